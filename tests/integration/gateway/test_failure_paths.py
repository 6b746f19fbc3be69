"""Failure paths through gateway → NATS → workers: clear tool errors with the right code, nothing hangs."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import pytest
from mcp import Client
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.tokens import TokenStore

from tests.integration.gateway.conftest import FAST, FailureStack, sim_dict
from tests.support.mcp_client import SimClient, http_client
from tests.support.nats import start_nats
from tests.support.services import start_gateway
from tests.support.sim import clear_sim_faults, sim_faults


@pytest.fixture
def no_faults(stack: FailureStack) -> Any:
    yield
    clear_sim_faults(stack.sim)


async def _error(client: Client, tool: str, args: dict[str, Any]) -> tuple[str, dict[str, Any], float]:
    started = time.monotonic()
    result = await client.call_tool(tool, args)
    elapsed = time.monotonic() - started
    assert result.is_error, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    structured = result.structured_content or {}
    assert text.startswith(structured["code"] + ":")
    return text, structured, elapsed


async def _requests_seen(nats_url: str, service: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        total = 0
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish(f"$SRV.STATS.{service}", b"", reply=inbox)
        try:
            while True:
                msg = await sub.next_msg(timeout=0.3)
                total += sum(e.get("num_requests", 0) for e in json.loads(msg.data).get("endpoints", []))
        except nats.errors.TimeoutError:
            pass
        return total
    finally:
        await nc.close()


async def _wait_for_new_request(nats_url: str, service: str, before: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _requests_seen(nats_url, service) > before:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{service} never received the call")


async def test_invalid_arguments_are_refused_before_any_worker_is_asked(stack: FailureStack) -> None:
    # A gateway whose cluster has no workers at all: anything reaching NATS would come back `unavailable`.
    lonely = start_gateway(stack.nats.url, stack.workdir, env={**FAST, "PMCP_DEFAULT_CLUSTER": "nowhere"})
    try:
        async with http_client(lonely.url, lonely.token) as mcp:
            for tool, args in [("vm_status", {"vmid": "abc"}), ("vm_action", {"vmid": 100, "action": "explode"}),
                               ("execute_command", {"command": ""}), ("proxmox_api", {"path": "../etc"}),
                               ("list_vms", {"unexpected": 1})]:
                _, structured, _ = await _error(mcp, tool, args)
                assert structured["code"] == "invalid_argument", (tool, structured)
            _, structured, elapsed = await _error(mcp, "list_vms", {})
            assert structured["code"] == "unavailable" and structured["retryable"] is True
            assert "nowhere" in structured["message"]
            assert elapsed < 5
    finally:
        lonely.proc.stop()


async def test_simulator_500_becomes_upstream_error(stack: FailureStack, no_faults: Any) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _scenario_simulator_500_becomes_upstream_error(stack, client)


async def _scenario_simulator_500_becomes_upstream_error(
    stack: FailureStack, client: Client
) -> None:
    sim_faults(stack.sim, [{"path": "^/cluster/resources", "error_rate": 1.0, "status": 500,
                            "message": "simulated failure"}])
    _, structured, _ = await _error(client, "list_vms", {})
    assert structured["code"] == "upstream_error"


async def test_host_addresses_in_upstream_errors_reach_admins_only(stack: FailureStack, no_faults: Any) -> None:
    sim_faults(stack.sim, [{"path": "^/cluster/resources", "error_rate": 1.0, "status": 500,
                            "message": "Can't connect to 10.20.30.40:8006 (No route to host) via [fd00::7]:8006"}])
    state_dir = stack.workdir / f"gateway-{urlsplit(stack.gateway.url).port}-state"
    reader = TokenStore(state_dir / "tokens.json").create(name=f"reader-{time.monotonic_ns()}", scope=Scope.READ)
    async with http_client(stack.gateway.url, reader.secret) as client:
        _, hidden, _ = await _error(client, "list_vms", {})
    async with http_client(stack.gateway.url, stack.gateway.token) as client:  # the static token is admin
        _, shown, _ = await _error(client, "list_vms", {})
    assert hidden["code"] == shown["code"] == "upstream_error"
    assert "Can't connect to [host]:8006 (No route to host) via [host]:8006" in hidden["message"], hidden
    assert "10.20.30.40:8006" in shown["message"] and "[fd00::7]:8006" in shown["message"], shown


async def test_simulator_that_hangs_gives_a_timeout_not_a_hang(stack: FailureStack, no_faults: Any) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _scenario_simulator_that_hangs_gives_a_timeout_not_a_hang(stack, client)


async def _scenario_simulator_that_hangs_gives_a_timeout_not_a_hang(
    stack: FailureStack, client: Client
) -> None:
    sim_faults(stack.sim, [{"path": "^/nodes$", "latency_ms": 20000}])
    _, structured, elapsed = await _error(client, "node_status", {})
    assert structured["code"] == "timeout"
    assert elapsed < 10


async def test_worker_killed_mid_call_reports_unavailable_with_unknown_outcome(
    stack: FailureStack, no_faults: Any
) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _scenario_worker_killed_mid_call_reports_unavailable_with_unknown_outcome(stack, client)


async def _scenario_worker_killed_mid_call_reports_unavailable_with_unknown_outcome(
    stack: FailureStack, client: Client
) -> None:
    guest = next(g for g in _guests(stack) if g["type"] == "qemu")
    sim_faults(stack.sim, [{"path": "/status/current$", "latency_ms": 20000}])
    before = await _requests_seen(stack.nats.url, "proxmox-mcp-api-worker")
    call = asyncio.create_task(client.call_tool("vm_status", {"vmid": guest["vmid"], "node": guest["node"]}))
    await _wait_for_new_request(stack.nats.url, "proxmox-mcp-api-worker", before)
    stack.workers["api-worker"].stop(signal.SIGKILL)
    started = time.monotonic()
    result = await asyncio.wait_for(call, timeout=20)
    assert result.is_error
    assert result.structured_content["code"] in {"unavailable", "timeout"}  # type: ignore[index]
    assert result.structured_content["code"] == "unavailable", result.content  # type: ignore[index]
    assert "proxmox-mcp-api-worker handling this call stopped responding" in result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content["retryable"] is True  # type: ignore[index]  # a read: safe to send again
    assert time.monotonic() - started < 10
    stack.restart_worker("api-worker")


async def test_vm_action_on_a_killed_worker_says_the_outcome_is_unknown(stack: FailureStack, no_faults: Any) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _scenario_vm_action_on_a_killed_worker_says_the_outcome_is_unknown(stack, client)


async def _scenario_vm_action_on_a_killed_worker_says_the_outcome_is_unknown(
    stack: FailureStack, client: Client
) -> None:
    await _await_worker(stack, client)
    guest = next(g for g in _guests(stack) if g["type"] == "qemu" and g["status"] == "stopped"
                 and not g.get("template"))
    sim_faults(stack.sim, [{"path": "/status/start$", "latency_ms": 20000}])
    before = await _requests_seen(stack.nats.url, "proxmox-mcp-api-worker")
    call = asyncio.create_task(client.call_tool("vm_action", {"vmid": guest["vmid"], "action": "start"}))
    await _wait_for_new_request(stack.nats.url, "proxmox-mcp-api-worker", before)
    stack.workers["api-worker"].stop(signal.SIGKILL)
    result = await asyncio.wait_for(call, timeout=20)
    assert result.structured_content["code"] == "unavailable"  # type: ignore[index]
    assert result.structured_content["retryable"] is False  # type: ignore[index]
    assert "unknown" in result.content[0].text  # type: ignore[union-attr]
    stack.restart_worker("api-worker")


async def test_sigterm_lets_the_in_flight_call_finish(stack: FailureStack, no_faults: Any) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _scenario_sigterm_lets_the_in_flight_call_finish(stack, client)


async def _scenario_sigterm_lets_the_in_flight_call_finish(
    stack: FailureStack, client: Client
) -> None:
    await _await_worker(stack, client)
    guest = _guests(stack)[0]
    sim_faults(stack.sim, [{"path": "/status/current$", "latency_ms": 1500}])
    before = await _requests_seen(stack.nats.url, "proxmox-mcp-api-worker")
    call = asyncio.create_task(client.call_tool("vm_status", {"vmid": guest["vmid"], "node": guest["node"]}))
    await _wait_for_new_request(stack.nats.url, "proxmox-mcp-api-worker", before)
    worker = stack.workers["api-worker"]
    worker.popen.send_signal(signal.SIGTERM)
    result = await asyncio.wait_for(call, timeout=20)
    assert not result.is_error, result.content
    assert result.structured_content["vmid"] == guest["vmid"]  # type: ignore[index]
    assert worker.popen.wait(timeout=15) == 0
    stack.restart_worker("api-worker")


async def test_calls_work_again_after_nats_restarts_on_the_same_port(stack: FailureStack) -> None:
    port = stack.nats.port
    stack.nats.proc.stop()
    async with http_client(stack.gateway.url, stack.gateway.token) as mcp:
        _, structured, elapsed = await _error(mcp, "list_vms", {})
        assert structured["code"] == "unavailable" and elapsed < 10
        stack.nats = start_nats(stack.workdir / "nats", port=port)
        deadline = time.monotonic() + 30
        while True:
            result = await mcp.call_tool("list_vms", {})
            if not result.is_error:
                break
            assert time.monotonic() < deadline, f"no recovery after NATS restart: {result.content}"
            await asyncio.sleep(0.1)
        assert result.structured_content["count"] == len(_guests(stack))  # type: ignore[index]


def _guests(stack: FailureStack) -> list[dict[str, Any]]:

    with SimClient(sim_dict(stack.sim)) as sim:
        return sim.guests()


async def _await_worker(stack: FailureStack, client: Client, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await client.call_tool("list_vms", {})
        if not result.is_error:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("api-worker did not come back")
