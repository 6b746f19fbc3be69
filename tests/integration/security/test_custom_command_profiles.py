"""A command profile from PMCP_COMMAND_PROFILES works end to end: `proxmox-mcp demo` hands the file to both
workers, a token with that profile runs what the profile allows through the real ssh-worker (execute_command,
container_exec) and api-worker (guest_exec), and each worker refuses, under that same profile, what it does not
allow, even when the request bypasses the gateway."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig
from proxmox_mcp_contracts.subjects import ApiOp, SshOp
from proxmox_mcp_runtime.config import dump_config_toml

from tests.integration.modes.helpers import api_call, error_of, ssh_call
from tests.support.demo import DemoStack, start_demo
from tests.support.mcp_client import SimClient, http_client
from tests.support.procs import start_process, wait_until
from tests.support.services import write_private

PROFILE = "hostinfo"
PROFILES_TOML = f"""
[profiles.{PROFILE}]
description = "only the host name: narrower than readonly, which also allows uname"

[[profiles.{PROFILE}.rules]]
program = "hostname"
"""
OUTSIDE = "uname -a"
"""Allowed by the built-in readonly profile, not by the custom one: a refusal proves which profile decided."""
CALLER = Caller(token_id="custom-profile", scope=Scope.EXEC, command_profile=PROFILE)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    workdir = tmp_path_factory.mktemp("custom-profiles")
    profiles = workdir / "command_profiles.toml"
    profiles.write_text(PROFILES_TOML)
    stack = start_demo(workdir / "demo", extra_env={
        "PMCP_COMMAND_PROFILES": str(profiles), "PMCP_TOKEN_SCOPE": "exec", "PMCP_TOKEN_PROFILE": PROFILE,
    })
    try:
        yield stack
    finally:
        stack.proc.stop()


@pytest.fixture(scope="module")
def sim(demo: DemoStack) -> Iterator[SimClient]:
    with SimClient(demo.sim) as client:
        yield client


@pytest.fixture
async def nc(demo: DemoStack) -> AsyncIterator[NatsClient]:
    async with await nats.connect(demo.nats_url) as client:
        yield client


def _running(sim: SimClient, kind: str) -> dict[str, Any]:
    return next(g for g in sim.guests() if g["type"] == kind and g["status"] == "running" and not g.get("template"))


@pytest.fixture(scope="module")
def agent_vm(sim: SimClient) -> dict[str, Any]:
    """A running VM with its guest agent switched on (in the simulator directly: this stack is the module's own)."""
    vm = _running(sim, "qemu")
    sim.put(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/config", agent="1")
    return vm


async def _stdout(demo: DemoStack, tool: str, args: dict[str, Any]) -> str:
    async with http_client(demo.mcp_url, demo.token) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["exit_code"] == 0, result.structured_content
    return str(result.structured_content["stdout"])


async def test_a_custom_profile_token_runs_an_allowed_command_on_the_host_through_the_ssh_worker(
    demo: DemoStack, sim: SimClient
) -> None:
    node = sim.sim["nodes"][0]
    assert await _stdout(demo, "execute_command", {"command": "hostname", "node": node}) == f"{node}\n"


async def test_a_custom_profile_token_runs_an_allowed_command_in_a_container_through_the_ssh_worker(
    demo: DemoStack, sim: SimClient
) -> None:
    container = _running(sim, "lxc")
    assert await _stdout(demo, "container_exec", {"vmid": container["vmid"], "command": "hostname"}) == \
        f"{container['name']}\n"


async def test_a_custom_profile_token_runs_an_allowed_command_in_a_vm_through_the_api_worker(
    demo: DemoStack, agent_vm: dict[str, Any]
) -> None:
    assert await _stdout(demo, "guest_exec", {"vmid": agent_vm["vmid"], "command": "hostname"}) == \
        f"{agent_vm['name']}\n"


async def test_the_gateway_refuses_a_command_outside_the_custom_profile(demo: DemoStack) -> None:
    async with http_client(demo.mcp_url, demo.token) as client:
        result = await client.call_tool("execute_command", {"command": OUTSIDE})
    assert result.is_error
    text = result.content[0].text if result.content and result.content[0].type == "text" else ""
    assert f"not allowed in profile {PROFILE}" in text, text


async def test_the_ssh_worker_refuses_a_host_command_outside_the_custom_profile_sent_straight_to_it(
    nc: NatsClient,
) -> None:
    failure = error_of(await ssh_call(nc, "default", SshOp.EXEC, {"command": OUTSIDE}, caller=CALLER))
    assert failure.code is ErrorCode.POLICY_DENIED
    assert f"not allowed in profile {PROFILE}" in failure.message, failure.message


async def test_the_ssh_worker_refuses_a_container_command_outside_the_custom_profile_sent_straight_to_it(
    nc: NatsClient, sim: SimClient
) -> None:
    container = _running(sim, "lxc")
    failure = error_of(await ssh_call(nc, "default", SshOp.CONTAINER_EXEC,
                                      {"vmid": container["vmid"], "command": OUTSIDE}, caller=CALLER))
    assert failure.code is ErrorCode.POLICY_DENIED
    assert f"not allowed in profile {PROFILE}" in failure.message, failure.message


async def test_the_api_worker_refuses_a_guest_command_outside_the_custom_profile_sent_straight_to_it(
    nc: NatsClient, agent_vm: dict[str, Any]
) -> None:
    failure = error_of(await api_call(nc, "default", ApiOp.GUEST_EXEC,
                                      {"vmid": agent_vm["vmid"], "command": OUTSIDE}, caller=CALLER))
    assert failure.code is ErrorCode.POLICY_DENIED
    assert f"not allowed in profile {PROFILE}" in failure.message, failure.message


@pytest.mark.parametrize("worker", ["ssh-worker", "api-worker"])
@pytest.mark.parametrize("name, text, fragment", [
    ("absent.toml", None, "absent.toml does not exist"),
    ("broken.toml", "[profiles.x\n", "broken.toml is not valid TOML"),
    ("scope.toml", '[[profiles.x.rules]]\nprogram = "ls"\nscope = "god"\n', "profiles.x.rules[0].scope"),
])
def test_a_worker_given_an_unusable_profiles_file_refuses_to_start_naming_the_variable(
    tmp_path: Path, worker: str, name: str, text: str | None, fragment: str
) -> None:
    profiles = tmp_path / name
    if text is not None:
        profiles.write_text(text)
    cluster = ClusterConfig(name="default", hosts=[HostConfig(node="pve1", address="127.0.0.1")])
    config = write_private(tmp_path / "clusters.toml", dump_config_toml(ProxmoxConfig(clusters=[cluster])))
    proc = start_process(f"{worker}-bad-profiles", [sys.executable, "-m", "proxmox_mcp_cli.main", worker], tmp_path,
                         env={"NATS_URL": "nats://127.0.0.1:1", "PMCP_CONFIG": str(config),
                              "PMCP_ENV_FILE": str(tmp_path / "absent.env"), "PMCP_COMMAND_PROFILES": str(profiles)})
    try:
        wait_until(lambda: not proc.alive(), timeout=30, what=f"the {worker} to refuse its profiles file")
    finally:
        proc.stop()
    assert proc.popen.returncode == 2, proc.log_text()
    problems = [json.loads(line).get("problem", "") for line in proc.log_text().splitlines() if line.startswith("{")]
    assert any(p.startswith(f"PMCP_COMMAND_PROFILES: {profiles}") and fragment in p for p in problems), problems
    assert "Traceback" not in proc.log_text()
