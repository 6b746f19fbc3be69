"""The life of a task of the 2026 tasks extension, front-end neutral: opened durably, brought up to date when its
owner asks (tasks/get), cancelled on request (tasks/cancel).

No replica follows a task in the background: each tasks/get asks the task's source once (for a Proxmox task: one
task_status call through the api-worker), and the first replica that sees it finished writes the final result with
compare-and-set, so every replica answers the same result from then on. A gateway can stop at any time without a
task losing its way.

Cancellation stops the gateway's following only: the MCP task becomes `cancelled` at once, and the Proxmox task
goes on to its end in Proxmox (its UPID is in the status message; follow it with task_status or wait_task).
Stopping a half-done start, stop or rollback would leave a guest in a state nobody asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_runtime.kv import KeyExistsError, KvError
from proxmox_mcp_runtime.redact import DEFAULT_REDACTOR, Redactor

from proxmox_mcp_gateway.audit import AuditError, AuditLog, utc_timestamp
from proxmox_mcp_gateway.task_records import TaskRecord, TaskRecords, TaskStatus, new_task_id

log = logging.getLogger(__name__)

CANCEL_RETRIES = 5


class TaskNotFound(Exception):
    """Unknown id, another principal's task, or expired: the caller cannot tell which (no task leaks)."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("Task has expired" if expired else "Task not found")


class TaskStoreUnavailable(Exception):
    """The shared state cannot answer now."""


@dataclass(frozen=True)
class Settled:
    """A task's end as its source saw it: the final tool result (completed) or a JSON-RPC error (failed)."""

    message: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TaskSource(Protocol):
    async def check(self, record: TaskRecord, caller: Caller) -> Settled | str:
        """The end of the task, or a status message while it works."""
        ...

    def cancelled_message(self, record: TaskRecord) -> str:
        """What the client is told when it cancels: what happens to the work behind the task."""
        ...


@dataclass(frozen=True)
class Opening:
    """What a new task follows."""

    principal: str
    tool: str
    source: str
    message: str
    cluster: str | None = None
    upid: str | None = None
    started: dict[str, Any] | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    params: dict[str, Any] | None = None


AuditHook = Callable[[dict[str, Any]], Awaitable[None]]


class TaskRuns:
    def __init__(self, records: TaskRecords, sources: Mapping[str, TaskSource], *, ttl: float,
                 poll_interval_ms: int, audit: AuditLog | None = None, redactor: Redactor = DEFAULT_REDACTOR) -> None:
        self.records = records
        self.sources = dict(sources)
        self.ttl = ttl
        self.poll_interval_ms = max(1, poll_interval_ms)
        self.audit = audit
        self.redactor = redactor

    async def open(self, opening: Opening) -> TaskRecord:
        """The new record, durable when this returns; TaskStoreUnavailable when it could not be stored."""
        now = self.records.clock()
        record = TaskRecord(
            task_id=new_task_id(), principal=opening.principal, tool=opening.tool, source=opening.source,
            status_message=opening.message, created_at=now, updated_at=now, expires_at=now + self.ttl,
            poll_interval_ms=self.poll_interval_ms, cluster=opening.cluster, upid=opening.upid,
            started=opening.started, request_id=opening.request_id, idempotency_key=opening.idempotency_key,
            params=opening.params)
        try:
            await self.records.create(record)
        except KvError:
            raise TaskStoreUnavailable from None
        return record

    async def _owned(self, task_id: str, caller: Caller) -> tuple[TaskRecord, int]:
        try:
            found = await self.records.load(task_id)
        except KvError:
            raise TaskStoreUnavailable from None
        if found is None or found[0].principal != caller.token_id:
            raise TaskNotFound
        return found

    async def get(self, task_id: str, caller: Caller) -> TaskRecord:
        """The task as it is now, asking its source when it still works."""
        record, revision = await self._owned(task_id, caller)
        if record.status.terminal:
            return record
        source = self.sources.get(record.source)
        if source is None:  # a fixture task read by a gateway without fixtures
            raise TaskNotFound
        outcome = await source.check(record, caller)
        now = self.records.clock()
        if isinstance(outcome, str):
            return record.model_copy(update={"status_message": self.redactor.redact_text(outcome)})
        status = TaskStatus.FAILED if outcome.error is not None else TaskStatus.COMPLETED
        settled = record.model_copy(update={
            "status": status, "status_message": self.redactor.redact_text(outcome.message), "updated_at": now,
            "result": self.redactor.redact_value(outcome.result) if outcome.result is not None else None,
            "error": outcome.error})
        try:
            await self.records.save(settled, revision)
        except KeyExistsError:  # another replica settled or cancelled it first: its record is the truth
            return (await self._owned(task_id, caller))[0]
        except KvError:
            return settled  # answered now; the next tasks/get settles it again
        await self._audit(settled, "task_finished", "ok" if status is TaskStatus.COMPLETED else "failed")
        return settled

    async def cancel(self, task_id: str, caller: Caller) -> TaskRecord:
        """Cancelled unless it had ended already (then unchanged): cancelling is idempotent."""
        for _ in range(CANCEL_RETRIES):
            record, revision = await self._owned(task_id, caller)
            if record.status.terminal:
                return record
            source = self.sources.get(record.source)
            message = source.cancelled_message(record) if source is not None else "cancelled"
            cancelled = record.model_copy(update={"status": TaskStatus.CANCELLED, "status_message": message,
                                                  "updated_at": self.records.clock()})
            try:
                await self.records.save(cancelled, revision)
            except KeyExistsError:
                continue
            except KvError:
                raise TaskStoreUnavailable from None
            await self._audit(cancelled, "task_cancelled", "cancelled")
            return cancelled
        raise TaskStoreUnavailable

    async def _audit(self, record: TaskRecord, event: str, result: str) -> None:
        if self.audit is None:
            return
        entry: dict[str, Any] = {
            "ts": utc_timestamp(), "event": event, "task_id": record.task_id, "token_id": record.principal,
            "tool": record.tool, "cluster": record.cluster, "upid": record.upid, "request_id": record.request_id,
            "result": result, "message": record.status_message}
        if record.idempotency_key is not None:
            entry["idempotency_key"] = record.idempotency_key
        try:
            await self.audit.append({k: v for k, v in entry.items() if v is not None})
        except AuditError:
            log.error("could not audit a task's end", extra={"tool": record.tool})
