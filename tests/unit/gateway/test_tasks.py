"""Following a started Proxmox task: progress while it runs, a wait that times out, a wait the caller cancels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.support.procs import wait_until_async
from tests.unit.gateway.executors import make
from tests.unit.gateway.fakes import UPID, FakeBus
from tests.unit.gateway.test_calls import caller, records, refused


async def test_a_started_task_is_followed_with_progress_when_asked(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path, bus=FakeBus(task_polls_running=2))
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    result = await executor.call("create_snapshot", {"vmid": 100, "name": "s1", "wait": True},
                                 caller(Scope.OPERATE), progress)
    assert result["waited"] is True and result["task"]["exitstatus"] == "OK"
    assert [s.op for s in bus.sent] == [ApiOp.SNAPSHOT_CREATE, *[ApiOp.TASK_STATUS] * 3]
    assert [m for _, _, m in seen] == ["task running: line 1", "task running: line 2", "task stopped: TASK OK",
                                       "task finished: OK"]
    assert seen[-1][0] == seen[-1][1]
    unwaited = await executor.call("create_snapshot", {"vmid": 100, "name": "s2"}, caller(Scope.OPERATE))
    assert unwaited["waited"] is False and unwaited["task"] is None


async def test_a_wait_that_times_out_names_the_task(tmp_path: Path) -> None:
    executor, _, _ = make(tmp_path, bus=FakeBus(task_polls_running=10_000), poll=0.2)
    failure = await refused(executor, caller(Scope.READ), "wait_task", {"upid": UPID, "timeout": 1})
    assert failure.code is ErrorCode.TIMEOUT and UPID in failure.info.message and "goes on" in failure.info.message


async def test_cancelling_a_wait_is_audited_with_the_task_that_goes_on(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path, bus=FakeBus(task_polls_running=10_000))
    call = asyncio.create_task(executor.call("vm_action", {"vmid": 100, "action": "start", "wait": True},
                                             caller(Scope.OPERATE)))
    await wait_until_async(lambda: sum(1 for s in bus.sent if s.op is ApiOp.TASK_STATUS) >= 2, timeout=5,
                           what="the wait to poll the task twice")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    done = records(audit)[-1]
    assert done["event"] == "tool_call" and done["result"] == "cancelled" and done["upid"] == UPID
    assert "goes on in Proxmox" in done["message"]
