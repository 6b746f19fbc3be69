"""NATS itself dies under a call in flight: the error blames the gateway's NATS connection, not the worker; a
read may be retried, a mutation's outcome is unknown. (The worker-death case is in test_failure_paths.)"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from tests.integration.gateway.conftest import FailureStack
from tests.integration.gateway.test_failure_paths import _await_worker, _guests, _requests_seen, _wait_for_new_request
from tests.support.mcp_client import http_client
from tests.support.nats import start_nats
from tests.support.sim import clear_sim_faults, sim_faults

API_WORKER = "proxmox-mcp-api-worker"


@pytest.fixture
def nats_comes_back(stack: FailureStack) -> Iterator[None]:
    """After the test: no faults, and NATS running again on its port (the stack's services reconnect to it)."""
    port = stack.nats.port
    try:
        yield
    finally:
        clear_sim_faults(stack.sim)
        if not stack.nats.proc.alive():
            stack.nats = start_nats(stack.workdir / "nats", port=port)


async def _kill_nats_under(stack: FailureStack, client: Client, tool: str, args: dict[str, Any]) -> tuple[Any, float]:
    before = await _requests_seen(stack.nats.url, API_WORKER)
    call = asyncio.create_task(client.call_tool(tool, args))
    await _wait_for_new_request(stack.nats.url, API_WORKER, before)
    stack.nats.proc.stop(signal.SIGKILL)
    started = time.monotonic()
    result = await asyncio.wait_for(call, timeout=20)
    return result, time.monotonic() - started


async def test_read_in_flight_when_nats_dies_blames_the_gateways_nats_connection_and_is_retryable(
    stack: FailureStack, nats_comes_back: None
) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _await_worker(stack, client)
        guest = _guests(stack)[0]
        sim_faults(stack.sim, [{"path": "/status/current$", "latency_ms": 20000}])
        result, elapsed = await _kill_nats_under(stack, client, "vm_status",
                                                 {"vmid": guest["vmid"], "node": guest["node"]})
        assert result.is_error
        error = result.structured_content
        assert error["code"] == "unavailable", result.content
        assert error["retryable"] is True, error
        assert "the gateway's connection to NATS failed during the call" in error["message"], error
        assert "worker" not in error["message"], error
        assert elapsed < 10


async def test_mutation_in_flight_when_nats_dies_says_its_outcome_is_unknown(
    stack: FailureStack, nats_comes_back: None
) -> None:
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await _await_worker(stack, client)
        guest = next(g for g in _guests(stack) if g["type"] == "qemu" and g["status"] == "stopped"
                     and not g.get("template"))
        sim_faults(stack.sim, [{"path": "/status/start$", "latency_ms": 20000}])
        result, elapsed = await _kill_nats_under(stack, client, "vm_action", {"vmid": guest["vmid"], "action": "start"})
        assert result.is_error
        error = result.structured_content
        assert error["code"] == "unavailable", result.content
        assert error["retryable"] is False, error
        assert "the gateway's connection to NATS failed during the call" in error["message"], error
        assert "outcome of this non-idempotent call is unknown, check before retrying" in error["message"], error
        assert elapsed < 10
