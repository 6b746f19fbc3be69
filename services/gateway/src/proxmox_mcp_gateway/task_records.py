"""Task records of the 2026 tasks extension, in the shared state: durable before the CreateTaskResult leaves, so
any gateway replica (and a restarted gateway) answers tasks/get and tasks/cancel for them.

A record says what the task follows (a Proxmox task by UPID, or a conformance fixture), whose it is (the token that
created it: nobody else may read or cancel it), its status, and once finished the final tool result (redacted) or
the JSON-RPC error. Records are read by id only: there is no listing, so one caller never learns of another's tasks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from proxmox_mcp_runtime.kv import BucketSpec, KeyValueStore
from pydantic import BaseModel, ValidationError

MAX_TASK_TTL = 7 * 86400.0
"""The bucket's own lifetime for a record (a week); PMCP_TASK_TTL (shorter) is the one clients are told."""
TASKS_BUCKET = BucketSpec(name="PMCP_TASKS", ttl=MAX_TASK_TTL,
                          description="proxmox-mcp task records of the MCP tasks extension")

BucketOpener = Callable[[BucketSpec], Awaitable[KeyValueStore]]


class TaskStatus(StrEnum):
    WORKING = "working"
    COMPLETED = "completed"
    """The tool call ended with a result, a tool error (isError) included: a Proxmox task that failed is one."""
    FAILED = "failed"
    """A JSON-RPC (protocol) error ended the call; never used for tool errors."""
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is not TaskStatus.WORKING


class TaskRecord(BaseModel):
    task_id: str
    principal: str
    """The token id that created the task; only it may read or cancel it."""
    tool: str
    source: str
    """What the task follows: `proxmox` (a Proxmox task by UPID) or `fixture` (test-only conformance tools)."""
    status: TaskStatus = TaskStatus.WORKING
    status_message: str | None = None
    created_at: float
    updated_at: float
    expires_at: float
    poll_interval_ms: int
    cluster: str | None = None
    upid: str | None = None
    started: dict[str, Any] | None = None
    """The (redacted) answer of the worker that started the Proxmox task; the final result builds on it."""
    request_id: str | None = None
    idempotency_key: str | None = None
    params: dict[str, Any] | None = None
    """Source-specific parameters (fixtures: seconds, label, ...)."""
    result: dict[str, Any] | None = None
    """The final CallToolResult on the wire (completed)."""
    error: dict[str, Any] | None = None
    """The JSON-RPC error object (failed)."""

    @property
    def ttl_ms(self) -> int:
        return int((self.expires_at - self.created_at) * 1000)


def new_task_id() -> str:
    """192 random bits, URL-safe: unguessable, and a valid key on both state backends."""
    return secrets.token_urlsafe(24)


class TaskRecords:
    """Records by task id (KvError when the shared state cannot answer: callers decide how to fail)."""

    def __init__(self, open_bucket: BucketOpener, clock: Callable[[], float] = time.time) -> None:
        self._open_bucket = open_bucket
        self.clock = clock

    async def create(self, record: TaskRecord) -> int:
        bucket = await self._open_bucket(TASKS_BUCKET)
        return await bucket.create(record.task_id, _dump(record))

    async def load(self, task_id: str) -> tuple[TaskRecord, int] | None:
        """The record and its revision; None when unknown, malformed or expired."""
        if not task_id or len(task_id) > 128 or not all(c.isalnum() or c in "-_" for c in task_id):
            return None
        bucket = await self._open_bucket(TASKS_BUCKET)
        entry = await bucket.get(task_id)
        if entry is None or entry.value is None:
            return None
        try:
            record = TaskRecord.model_validate_json(entry.value)
        except ValidationError:
            return None
        if record.expires_at <= self.clock():
            return None
        return record, entry.revision

    async def save(self, record: TaskRecord, revision: int) -> int:
        """Compare-and-set: KeyExistsError when another replica changed the record since `revision`."""
        bucket = await self._open_bucket(TASKS_BUCKET)
        return await bucket.update(record.task_id, _dump(record), revision=revision)


def _dump(record: TaskRecord) -> bytes:
    return record.model_dump_json(exclude_none=True).encode()
