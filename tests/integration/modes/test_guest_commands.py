"""Commands inside guests: guest_exec (api-worker, QEMU guest agent; every API mode) and container_exec
(ssh-worker, `pct exec` over SSH on the container's node), both under the command policy."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp, SshOp

from tests.integration.api.helpers import SimClient
from tests.integration.modes.helpers import (
    EXEC_CALLER,
    MODES,
    ModesStack,
    api_call,
    error_of,
    result_of,
    ssh_call,
)

READ_CALLER = Caller(token_id="modes-read", scope=Scope.READ, command_profile="readonly")


def _guests(sim: SimClient, kind: str, status: str) -> list[dict[str, Any]]:
    return [g for g in sim.get("/cluster/resources", type="vm")
            if g["type"] == kind and g["status"] == status and not g.get("template")]


def _agent_on(sim: SimClient, guest: dict[str, Any]) -> bool:
    config = sim.get(f"/nodes/{guest['node']}/qemu/{guest['vmid']}/config")
    return str(config.get("agent", "0")).split(",")[0].removeprefix("enabled=") in ("1", "on", "yes", "true")


async def _set_agent(nc: NatsClient, stack: ModesStack, guest: dict[str, Any], value: str) -> None:
    result_of(await api_call(nc, stack["alpha-direct"], ApiOp.PROXMOX_API, {
        "method": "PUT", "path": f"/nodes/{guest['node']}/qemu/{guest['vmid']}/config", "data": {"agent": value}}))


@pytest.fixture
async def agent_vm(modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient) -> AsyncIterator[dict[str, Any]]:
    """A running VM whose guest agent is configured (switched on for the test when the seed left it off)."""
    vm = _guests(alpha_client, "qemu", "running")[0]
    was_on = _agent_on(alpha_client, vm)
    if not was_on:
        await _set_agent(nc, modes_stack, vm, "1")
    try:
        yield vm
    finally:
        if not was_on:
            await _set_agent(nc, modes_stack, vm, "0")


# --- guest_exec ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_guest_exec_runs_the_approved_argv_in_the_vm(
    modes_stack: ModesStack, nc: NatsClient, agent_vm: dict[str, Any], mode: str
) -> None:
    result = result_of(await api_call(nc, modes_stack[f"alpha-{mode}"], ApiOp.GUEST_EXEC,
                                      {"vmid": agent_vm["vmid"], "command": "echo '$(id)' \"a  b\""}))
    assert (result["stdout"], result["stderr"], result["exit_code"]) == ("$(id) a  b\n", "", 0)
    assert (result["vmid"], result["node"], result["type"]) == (agent_vm["vmid"], agent_vm["node"], "qemu")
    assert result["truncated"] is False and result["pid"] > 0 and result["signal"] is None
    name = result_of(await api_call(nc, modes_stack[f"alpha-{mode}"], ApiOp.GUEST_EXEC,
                                    {"vmid": agent_vm["vmid"], "node": agent_vm["node"], "command": "hostname"}))
    assert name["stdout"] == f"{agent_vm['name']}\n"
    failing = result_of(await api_call(nc, modes_stack[f"alpha-{mode}"], ApiOp.GUEST_EXEC,
                                       {"vmid": agent_vm["vmid"], "command": "false"}))
    assert failing["exit_code"] == 1


async def test_guest_exec_refuses_bad_commands_callers_and_guests_with_the_right_code(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, agent_vm: dict[str, Any]
) -> None:
    cluster = modes_stack["alpha-direct"]
    container = _guests(alpha_client, "lxc", "running")[0]
    cases: list[tuple[dict[str, Any], Caller, ErrorCode, str]] = [
        ({"vmid": agent_vm["vmid"], "command": "rm -rf /"}, EXEC_CALLER, ErrorCode.POLICY_DENIED, "refused by policy"),
        ({"vmid": agent_vm["vmid"], "command": "id; reboot"}, EXEC_CALLER, ErrorCode.POLICY_DENIED, "';'"),
        ({"vmid": agent_vm["vmid"], "command": "hostname"}, READ_CALLER, ErrorCode.PERMISSION_DENIED, "scope exec"),
        ({"vmid": container["vmid"], "command": "hostname"}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT,
         "container_exec"),
        ({"vmid": 99999, "command": "hostname"}, EXEC_CALLER, ErrorCode.NOT_FOUND, "not found"),
        ({"vmid": agent_vm["vmid"], "command": ""}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT, "command"),
        ({"vmid": agent_vm["vmid"], "command": "hostname", "timeout": 0}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT,
         "timeout"),
    ]
    for args, caller, code, fragment in cases:
        failure = error_of(await api_call(nc, cluster, ApiOp.GUEST_EXEC, args, caller=caller))
        assert failure.code is code and fragment in failure.message, (args, failure)


async def test_guest_exec_without_a_usable_agent_says_why_with_the_proxmox_message(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, agent_vm: dict[str, Any]
) -> None:
    cluster = modes_stack["alpha-direct"]
    await _set_agent(nc, modes_stack, agent_vm, "0")
    try:
        failure = error_of(await api_call(nc, cluster, ApiOp.GUEST_EXEC,
                                          {"vmid": agent_vm["vmid"], "command": "hostname"}))
    finally:
        await _set_agent(nc, modes_stack, agent_vm, "1")
    assert failure.code is ErrorCode.CONFLICT
    assert "No QEMU guest agent configured" in failure.message and "qemu-guest-agent" in failure.message
    stopped = _guests(alpha_client, "qemu", "stopped")[0]
    was_on = _agent_on(alpha_client, stopped)
    await _set_agent(nc, modes_stack, stopped, "1")
    try:
        failure = error_of(await api_call(nc, cluster, ApiOp.GUEST_EXEC,
                                          {"vmid": stopped["vmid"], "command": "hostname"}))
    finally:
        await _set_agent(nc, modes_stack, stopped, "1" if was_on else "0")
    assert failure.code is ErrorCode.CONFLICT and f"VM {stopped['vmid']} is not running" in failure.message


async def test_guest_exec_gives_up_at_its_timeout(modes_stack: ModesStack, nc: NatsClient,
                                                  agent_vm: dict[str, Any]) -> None:
    started = time.monotonic()
    failure = error_of(await api_call(nc, modes_stack["alpha-direct"], ApiOp.GUEST_EXEC,
                                      {"vmid": agent_vm["vmid"], "command": "sleep 5", "timeout": 1}))
    assert time.monotonic() - started < 4.5
    assert failure.code is ErrorCode.TIMEOUT and "guest agent pid" in failure.message


# --- container_exec --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["alpha", "beta"])
async def test_container_exec_runs_pct_exec_on_the_containers_node(
    modes_stack: ModesStack, nc: NatsClient, family: str
) -> None:
    cluster = modes_stack[f"{family}-direct"]
    listed = result_of(await api_call(nc, cluster, ApiOp.LIST_VMS, {"type": "lxc", "status": "running"}))
    container = listed["vms"][0]
    looked_up = result_of(await ssh_call(nc, cluster, SshOp.CONTAINER_EXEC,
                                         {"vmid": container["vmid"], "command": "hostname"}))
    assert (looked_up["stdout"], looked_up["exit_code"], looked_up["type"]) == (f"{container['name']}\n", 0, "lxc")
    assert looked_up["node"] == container["node"] and looked_up["vmid"] == container["vmid"]
    quoted = result_of(await ssh_call(nc, cluster, SshOp.CONTAINER_EXEC, {
        "vmid": container["vmid"], "node": container["node"], "command": "echo '$(id)' \"a  b\" --"}))
    assert quoted["stdout"] == "$(id) a  b --\n"
    failing = result_of(await ssh_call(nc, cluster, SshOp.CONTAINER_EXEC,
                                       {"vmid": container["vmid"], "command": "false"}))
    assert failing["exit_code"] == 1


async def test_container_exec_refuses_bad_commands_callers_and_guests_with_the_right_code(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    running = _guests(alpha_client, "lxc", "running")[0]
    stopped = _guests(alpha_client, "lxc", "stopped")[0]
    vm = _guests(alpha_client, "qemu", "running")[0]
    other = next(n for n in modes_stack.alpha.nodes if n != running["node"])
    cases: list[tuple[dict[str, Any], Caller, ErrorCode, str]] = [
        ({"vmid": running["vmid"], "command": "rm -rf /"}, EXEC_CALLER, ErrorCode.POLICY_DENIED, "refused by policy"),
        ({"vmid": running["vmid"], "command": "pct exec 100 -- id"}, EXEC_CALLER, ErrorCode.POLICY_DENIED, "pct"),
        ({"vmid": running["vmid"], "command": "-- id"}, EXEC_CALLER, ErrorCode.POLICY_DENIED, "'--'"),
        ({"vmid": running["vmid"], "command": "hostname"}, READ_CALLER, ErrorCode.PERMISSION_DENIED, "scope exec"),
        ({"vmid": vm["vmid"], "command": "hostname"}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT, "guest_exec"),
        ({"vmid": stopped["vmid"], "command": "hostname"}, EXEC_CALLER, ErrorCode.CONFLICT, "not running"),
        ({"vmid": 99999, "command": "hostname"}, EXEC_CALLER, ErrorCode.NOT_FOUND, "not found"),
        ({"vmid": running["vmid"], "node": other, "command": "hostname"}, EXEC_CALLER, ErrorCode.NOT_FOUND,
         f"it is on node {running['node']}"),
        ({"vmid": running["vmid"], "node": "pve9", "command": "hostname"}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT,
         "unknown node"),
        ({"vmid": running["vmid"], "command": "hostname", "timeout": 0}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT,
         "container_exec arguments"),
        ({"vmid": "100; id", "command": "hostname"}, EXEC_CALLER, ErrorCode.INVALID_ARGUMENT, "vmid"),
    ]
    for args, caller, code, fragment in cases:
        failure = error_of(await ssh_call(nc, cluster, SshOp.CONTAINER_EXEC, args, caller=caller))
        assert failure.code is code and fragment in failure.message, (args, failure)


async def test_container_exec_timeout_ends_the_command(modes_stack: ModesStack, alpha_client: SimClient,
                                                       nc: NatsClient) -> None:
    running = _guests(alpha_client, "lxc", "running")[0]
    started = time.monotonic()
    failure = error_of(await ssh_call(nc, modes_stack["alpha-direct"], SshOp.CONTAINER_EXEC,
                                      {"vmid": running["vmid"], "command": "sleep 30", "timeout": 1}))
    assert time.monotonic() - started < 6
    assert failure.code is ErrorCode.TIMEOUT


async def test_workers_serve_only_their_clusters(modes_stack: ModesStack, nc: NatsClient) -> None:
    """PMCP_SSH_CLUSTERS / PMCP_API_CLUSTERS: a configured cluster left out has no responder at all."""
    with pytest.raises(NoRespondersError):
        await ssh_call(nc, modes_stack["alpha-pvesh"], SshOp.CONTAINER_EXEC, {"vmid": 100, "command": "id"})
    with pytest.raises(NoRespondersError):
        await api_call(nc, modes_stack["alpha-excluded"], ApiOp.LIST_VMS)
    assert result_of(await api_call(nc, modes_stack["beta-pvesh"], ApiOp.LIST_VMS))["count"] > 0
