"""Following a Proxmox task to its end: poll task_status, report progress (status and latest log line), stop at
the end, at the wait timeout, or when the caller cancels (the task itself goes on in Proxmox)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.subjects import ApiOp, WorkerKind
from proxmox_mcp_runtime.redact import Redactor

from proxmox_mcp_gateway.bus import WorkerBus
from proxmox_mcp_gateway.metrics import observe_task_wait

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]

LOG_TAIL_LINES = 20


class TaskFollower:
    def __init__(self, bus: WorkerBus, *, poll_interval: float, api_timeout: float, redactor: Redactor) -> None:
        self.bus = bus
        self.poll_interval = poll_interval
        self.api_timeout = api_timeout
        self.redactor = redactor

    async def status(self, upid: str, cluster: str, caller: Caller, log_lines: int = LOG_TAIL_LINES, *,
                     traceparent: str | None = None) -> t.TaskResult:
        query = t.TaskStatusArgs(upid=upid, log_lines=log_lines)
        raw = await self.bus.call(
            WorkerKind.API, ApiOp.TASK_STATUS, query.model_dump(mode="json", exclude_none=True),
            cluster=cluster, caller=caller, deadline=time.time() + self.api_timeout, idempotent=True,
            traceparent=traceparent,
        )
        return t.TaskResult.model_validate(raw)

    async def follow(self, upid: str, cluster: str, caller: Caller, *, timeout: float,
                     progress: ProgressFn | None, traceparent: str | None = None) -> t.TaskResult:
        """The stopped task; ServiceFailure(timeout) when it still runs after `timeout` seconds. Every poll carries
        traceparent, the trace of the call that follows the task."""
        began = time.monotonic()
        step = 0
        last_line: str | None = None
        try:
            while True:
                task = await self.status(upid, cluster, caller, traceparent=traceparent)
                step += 1
                line = task.log_tail[-1] if task.log_tail else None
                if progress is not None and (task.status == "running" or step == 1 or line != last_line):
                    await progress(float(step), None, self.redactor.redact_text(
                        f"task {task.status}" + (f": {line}" if line else "")))
                last_line = line
                if task.status == "stopped":
                    if progress is not None:
                        await progress(float(step + 1), float(step + 1), self.redactor.redact_text(
                            f"task finished: {task.exitstatus}"))
                    outcome = "ok" if task.exitstatus == "OK" else "failed"
                    observe_task_wait(cluster, outcome, time.monotonic() - began)
                    return task
                if time.monotonic() - began >= timeout:
                    observe_task_wait(cluster, "timeout", time.monotonic() - began)
                    raise ServiceFailure(
                        ErrorCode.TIMEOUT,
                        f"task {upid} still running after {timeout:g} s; it goes on in Proxmox (follow it with "
                        "wait_task or task_status)",
                        details={"upid": upid},
                    )
                await asyncio.sleep(self.poll_interval)
        except ServiceFailure as exc:
            if exc.code is not ErrorCode.TIMEOUT or "upid" not in exc.info.details:
                observe_task_wait(cluster, "error", time.monotonic() - began)
            raise
