"""Idempotency keys with the official client: a retry after a dropped connection and two calls at once start one
Proxmox task (counted in the simulator); the same key with other arguments is a conflict; keys are per token;
stored results are redacted; audit records carry the key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.idempotency import IDEMPOTENCY_BUCKET
from proxmox_mcp_runtime.kv.local import LocalState

from tests.integration.tools.helpers import ToolsStack, call_error, call_ok
from tests.support.mcp_client import http_client
from tests.support.sim import clear_sim_faults, reset_sim, sim_faults
from tests.support.worker_stats import worker_requests

SLOW_STOP = [{"path": r"^/nodes/[^/]+/qemu/\d+/status/stop$", "method": "POST", "latency_ms": 1500}]


@pytest.fixture(autouse=True)
def fresh_beta(tools_stack: ToolsStack) -> Iterator[None]:
    yield
    clear_sim_faults(tools_stack.beta)
    reset_sim(tools_stack.beta)


def stop_tasks(stack: ToolsStack, vmid: int) -> list[dict[str, Any]]:
    with stack.sim("beta") as sim:
        return [t for t in sim.get("/cluster/tasks") if t.get("type") == "qmstop" and t.get("id") == str(vmid)]


def stop(vmid: int, key: str) -> dict[str, Any]:
    return {"vmid": vmid, "action": "stop", "confirm": True, "cluster": "beta", "idempotency_key": key}


async def test_a_retry_after_a_dropped_connection_starts_no_second_proxmox_task(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")
    key = str(uuid.uuid4())
    sim_faults(tools_stack.beta, SLOW_STOP)  # the stop request is still on its way when the client goes
    before = await worker_requests(tools_stack.nats_url, ".vm_action")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        call = asyncio.create_task(client.call_tool("vm_action", stop(vm["vmid"], key)))
        deadline = time.monotonic() + 15
        while await worker_requests(tools_stack.nats_url, ".vm_action") == before:  # the stop is at the worker
            assert time.monotonic() < deadline, "the stop never reached the api-worker"
            await asyncio.sleep(0.02)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
    assert stop_tasks(tools_stack, vm["vmid"]) == [], "the client left before the stop reached the simulator"
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        again = await call_ok(client, "vm_action", stop(vm["vmid"], key))
    [task] = stop_tasks(tools_stack, vm["vmid"])
    assert again["upid"] == task["upid"]
    records = tools_stack.records("vm_action", event="tool_call", idempotency_key=key)
    # The first call went through (the gateway saw it through, whether or not it noticed the client leave); the
    # retry was answered from the key.
    first, retry = records
    assert first["result"] in ("ok", "cancelled") and not first.get("idempotent_replay")
    assert retry["result"] == "ok" and retry["idempotent_replay"] is True and retry["upid"] == task["upid"]


async def test_two_calls_with_one_key_at_once_start_one_proxmox_task(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")
    key = str(uuid.uuid4())
    sim_faults(tools_stack.beta, SLOW_STOP)
    async with (http_client(tools_stack.gateway.url, tools_stack.gateway.token) as first,
                http_client(tools_stack.gateway.url, tools_stack.gateway.token) as second):
        one, two = await asyncio.gather(call_ok(first, "vm_action", stop(vm["vmid"], key)),
                                        call_ok(second, "vm_action", stop(vm["vmid"], key)))
    [task] = stop_tasks(tools_stack, vm["vmid"])
    assert one == two and one["upid"] == task["upid"]
    records = tools_stack.records("vm_action", event="tool_call", idempotency_key=key)
    assert sorted(bool(r.get("idempotent_replay")) for r in records) == [False, True]


async def test_the_same_key_with_other_arguments_is_a_conflict_and_keys_are_per_token(
    tools_stack: ToolsStack,
) -> None:
    running = tools_stack.first_guest("beta", "qemu", "running")
    stopped = tools_stack.first_guest("beta", "qemu", "stopped")
    start = {"vmid": stopped["vmid"], "action": "start", "cluster": "beta"}
    key = str(uuid.uuid4())
    other_token = tools_stack.token(Scope.OPERATE)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        done = await call_ok(client, "vm_action", stop(running["vmid"], key))
        code, text = await call_error(client, "vm_action", {**start, "idempotency_key": key})
        assert code == "conflict" and "another call" in text
        # wait and wait_timeout only say how to answer: the same operation, answered from the first call.
        followed = await call_ok(client, "vm_action", {**stop(running["vmid"], key), "wait": True})
        assert followed["upid"] == done["upid"] and followed["waited"] is True and followed["task"]["ok"] is True
    async with http_client(tools_stack.gateway.url, other_token) as stranger:
        theirs = await call_ok(stranger, "vm_action", {**start, "idempotency_key": key})
    assert theirs["upid"] != done["upid"]
    assert len(stop_tasks(tools_stack, running["vmid"])) == 1
    with tools_stack.sim("beta") as sim:
        assert [t["type"] for t in sim.get("/cluster/tasks") if t.get("id") == str(stopped["vmid"])] == ["qmstart"]


async def test_stored_results_are_redacted_and_a_replay_answers_them(tools_stack: ToolsStack) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    key = str(uuid.uuid4())
    args = {"command": f"echo password={secret}", "idempotency_key": key}
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        first = await call_ok(client, "execute_command", args)
        again = await call_ok(client, "execute_command", args)
    assert secret not in json.dumps(first) and "[REDACTED]" in first["stdout"]
    assert again == first
    state = LocalState(tools_stack.state_dir / "state.db")
    try:
        bucket = await state.bucket(IDEMPOTENCY_BUCKET)
        stored = [(await bucket.get(k)) for k in await bucket.keys()]
    finally:
        await state.close()
    raw = b"".join(entry.value or b"" for entry in stored if entry is not None)
    assert b"[REDACTED]" in raw and secret.encode() not in raw and key.encode() not in raw
    assert all(secret not in json.dumps(r) for r in tools_stack.records("execute_command"))
    assert len(tools_stack.records("execute_command", event="tool_call", idempotency_key=key)) == 2


async def test_a_refused_call_does_not_use_up_its_key(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")
    key = str(uuid.uuid4())
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        code, _ = await call_error(client, "vm_action", {**stop(vm["vmid"], key), "confirm": False})
        assert code == "policy_denied"
        assert stop_tasks(tools_stack, vm["vmid"]) == []
        done = await call_ok(client, "vm_action", stop(vm["vmid"], key))
    [task] = stop_tasks(tools_stack, vm["vmid"])
    assert done["upid"] == task["upid"]


async def test_rest_calls_honour_the_key_too(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")
    key = str(uuid.uuid4())
    first = tools_stack.rest(tools_stack.gateway.token, "vm_action", stop(vm["vmid"], key))
    again = tools_stack.rest(tools_stack.gateway.token, "vm_action", stop(vm["vmid"], key))
    assert first.status_code == again.status_code == 200
    assert first.json()["structuredContent"] == again.json()["structuredContent"]
    assert len(stop_tasks(tools_stack, vm["vmid"])) == 1
