"""Tasks of the tasks extension through the executor (fake bus, local state file): which calls become tasks, what a
task answers as it runs and ends, cancellation, ownership, and what happens when the task store is away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, TaskTicket, ToolExecutor
from proxmox_mcp_gateway.principal import Principal
from proxmox_mcp_gateway.task_records import TaskRecords, TaskStatus
from proxmox_mcp_gateway.task_runs import Opening, TaskNotFound, TaskRuns
from proxmox_mcp_gateway.task_sources import PROXMOX, ProxmoxTaskSource
from proxmox_mcp_gateway.tasks import TaskFollower
from proxmox_mcp_runtime.kv import BucketSpec, KeyValueStore, KvUnavailableError
from proxmox_mcp_runtime.kv.local import LocalState
from proxmox_mcp_runtime.redact import Redactor

from tests.unit.gateway.fakes import UPID, FakeBus

OWNER = Principal(token_id="owner", scope=Scope.ADMIN, command_profile="readonly")
STRANGER = Principal(token_id="stranger", scope=Scope.ADMIN, command_profile="readonly")
START = {"vmid": 100, "action": "start", "wait": True}


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[LocalState]:
    backend = LocalState(tmp_path / "state.db")
    yield backend
    await backend.close()


def executor(state: LocalState | None, bus: FakeBus) -> ToolExecutor:
    async def open_bucket(spec: BucketSpec) -> KeyValueStore:
        if state is None:
            raise KvUnavailableError("no store")
        return await state.bucket(spec)

    follower = TaskFollower(cast(Any, bus), poll_interval=0.01, api_timeout=5, redactor=Redactor())
    runs = TaskRuns(TaskRecords(open_bucket), {PROXMOX: ProxmoxTaskSource(follower)}, ttl=60, poll_interval_ms=200)
    return ToolExecutor(cast(Any, bus), CallLimits(task_poll_interval=0.01), CallSecurity(redactor=Redactor()),
                        follower=follower, tasks=runs)


def polls(bus: FakeBus) -> int:
    return sum(1 for sent in bus.sent if sent.op is ApiOp.TASK_STATUS)


async def test_a_wait_becomes_a_task_only_for_a_client_that_takes_tasks(state: LocalState) -> None:
    bus = FakeBus(task_polls_running=1)
    tool_executor = executor(state, bus)
    ticket = await tool_executor.call_with_tasks("vm_action", START, OWNER, as_task=True)
    assert isinstance(ticket, TaskTicket) and ticket.record.upid == UPID and polls(bus) == 0
    plain = await tool_executor.call_with_tasks("vm_action", START, OWNER)
    assert isinstance(plain, dict) and plain["waited"] is True
    no_wait = await tool_executor.call_with_tasks("vm_action", {**START, "wait": False}, OWNER, as_task=True)
    assert isinstance(no_wait, dict) and no_wait["waited"] is False
    read = await tool_executor.call_with_tasks("list_vms", {}, OWNER, as_task=True)
    assert isinstance(read, dict)


async def test_a_task_is_asked_once_per_get_and_keeps_its_final_result(state: LocalState) -> None:
    bus = FakeBus(task_polls_running=1)
    tool_executor = executor(state, bus)
    runs = tool_executor.task_runs
    assert runs is not None
    ticket = await tool_executor.call_with_tasks("vm_action", START, OWNER, as_task=True)
    assert isinstance(ticket, TaskTicket)
    working = await runs.get(ticket.record.task_id, OWNER)
    assert working.status is TaskStatus.WORKING and working.status_message == "task running: line 1"
    done = await runs.get(ticket.record.task_id, OWNER)
    assert done.status is TaskStatus.COMPLETED and done.result is not None
    assert done.result["structuredContent"]["task"]["exitstatus"] == "OK" and not done.result.get("isError")
    asked = polls(bus)
    assert (await runs.get(ticket.record.task_id, OWNER)).result == done.result and polls(bus) == asked
    assert (await runs.cancel(ticket.record.task_id, OWNER)).status is TaskStatus.COMPLETED


async def test_cancel_ends_the_following_and_only_the_owner_sees_the_task(state: LocalState) -> None:
    bus = FakeBus(task_polls_running=100)
    tool_executor = executor(state, bus)
    runs = tool_executor.task_runs
    assert runs is not None
    ticket = await tool_executor.call_with_tasks("wait_task", {"upid": UPID}, OWNER, as_task=True)
    assert isinstance(ticket, TaskTicket)
    for attempt in (runs.get, runs.cancel):
        with pytest.raises(TaskNotFound):
            await attempt(ticket.record.task_id, STRANGER)
    cancelled = await runs.cancel(ticket.record.task_id, OWNER)
    assert cancelled.status is TaskStatus.CANCELLED and UPID in (cancelled.status_message or "")
    asked = polls(bus)
    assert (await runs.get(ticket.record.task_id, OWNER)).status is TaskStatus.CANCELLED and polls(bus) == asked
    with pytest.raises(TaskNotFound):
        await runs.get("no-such-task", OWNER)


async def test_without_a_task_store_the_call_follows_its_task_itself(tmp_path: Path) -> None:
    bus = FakeBus(task_polls_running=1)
    result = await executor(None, bus).call_with_tasks("vm_action", START, OWNER, as_task=True)
    assert isinstance(result, dict) and result["waited"] is True and result["task"]["exitstatus"] == "OK"


async def test_a_task_past_its_ttl_is_unknown(state: LocalState) -> None:
    clock = [1000.0]

    async def open_bucket(spec: BucketSpec) -> KeyValueStore:
        return await state.bucket(spec)

    runs = TaskRuns(TaskRecords(open_bucket, clock=lambda: clock[0]), {}, ttl=60, poll_interval_ms=200)
    record = await runs.open(Opening(principal=OWNER.token_id, tool="wait_task", source=PROXMOX, message="x",
                                     cluster="default", upid=UPID))
    assert record.ttl_ms == 60_000
    assert (await runs.cancel(record.task_id, OWNER)).status is TaskStatus.CANCELLED
    clock[0] += 61
    with pytest.raises(TaskNotFound):
        await runs.get(record.task_id, OWNER)
