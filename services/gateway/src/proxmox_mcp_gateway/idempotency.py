"""Idempotency keys of mutating calls: a retried call with the same key never does the work twice.

The key a client sends is scoped to its principal (the same key from another token is another key) and stored as a
SHA-256 digest in the shared state (JetStream KV with several gateways, the local state file otherwise), so any
replica sees it. A call claims its key just before dispatch (after every gateway check: a refused call claims
nothing), then records what happened: the task it started (UPID) and the final result or error, redacted. A
duplicate with the same arguments waits while the first is in flight and is answered from the record; the same key
with other arguments is `conflict`. Records live PMCP_IDEMPOTENCY_TTL seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
from proxmox_mcp_runtime.kv import BucketSpec, KeyExistsError, KeyValueStore, KvError
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_TTL = 86400.0
"""The bucket's own lifetime for an entry (a day): records are dropped by the store at the latest then."""
IDEMPOTENCY_BUCKET = BucketSpec(name="PMCP_IDEMPOTENCY", ttl=MAX_IDEMPOTENCY_TTL,
                                description="proxmox-mcp idempotency keys of mutating calls")

BucketOpener = Callable[[BucketSpec], Awaitable[KeyValueStore]]


class Phase(StrEnum):
    PENDING = "pending"
    """Claimed; the call is on its way (or its gateway stopped before it could say what happened)."""
    STARTED = "started"
    """The worker started a Proxmox task (upid); the call may still be following it."""
    DONE = "done"
    """The call ended: result or error."""


class KeyRecord(BaseModel):
    fingerprint: str
    tool: str
    phase: Phase
    created_at: float
    expires_at: float
    cluster: str | None = None
    upid: str | None = None
    started: dict[str, Any] | None = None
    """The worker's (redacted) answer that started the task: what a retry without wait answers."""
    task_id: str | None = None
    """The MCP task (tasks extension) created for this call."""
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None


@dataclass
class Claim:
    """Held by the call that claimed a key; it alone writes the record."""

    key: str
    """The raw key, for the audit record."""
    store_key: str
    revision: int
    record: KeyRecord


def store_key(principal: str, key: str) -> str:
    return hashlib.sha256(f"{principal}\x00{key}".encode()).hexdigest()


def fingerprint(tool: str, cluster: str, operation: dict[str, Any]) -> str:
    """What must be equal for a retry to be the same call: tool, cluster and the operation's arguments."""
    canonical = json.dumps({"tool": tool, "cluster": cluster, "args": operation}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _unavailable() -> ServiceFailure:
    return ServiceFailure(ErrorCode.UNAVAILABLE, "the idempotency key cannot be checked now (the shared state does "
                          "not answer); nothing was done, retry with the same key", retryable=True)


class IdempotencyLedger:
    def __init__(self, open_bucket: BucketOpener, *, retention: float = 600.0, wait: float = 60.0,
                 poll_interval: float = 0.1, clock: Callable[[], float] = time.time) -> None:
        self._open_bucket = open_bucket
        self.retention = retention
        self.wait = wait
        self.poll_interval = poll_interval
        self.clock = clock

    async def _bucket(self) -> KeyValueStore:
        try:
            return await self._open_bucket(IDEMPOTENCY_BUCKET)
        except KvError:
            raise _unavailable() from None

    async def claim(self, principal: str, key: str, *, tool: str, cluster: str,
                    operation: dict[str, Any]) -> Claim | KeyRecord:
        """A Claim for a key nobody used (the caller goes on with the call), or the record of the earlier call with
        this key once it is past PENDING (the caller answers from it). ServiceFailure(conflict) when the key was
        used for another call, or the earlier call is still pending after the wait."""
        bucket = await self._bucket()
        wanted = fingerprint(tool, cluster, operation)
        skey = store_key(principal, key)
        deadline = time.monotonic() + self.wait
        try:
            while True:
                now = self.clock()
                fresh = KeyRecord(fingerprint=wanted, tool=tool, cluster=cluster, phase=Phase.PENDING,
                                  created_at=now, expires_at=now + self.retention)
                revision = 0
                try:
                    # Shielded: a claim written must be known to its caller (else it would block the key).
                    with anyio.CancelScope(shield=True):
                        revision = await bucket.create(skey, _dump(fresh))
                    return Claim(key, skey, revision, fresh)
                except KeyExistsError:
                    pass
                entry = await bucket.get(skey)
                if entry is None or entry.value is None:
                    continue  # gone since (expired or released): claim it again
                existing = _load(entry.value)
                if existing is None or existing.expires_at <= now:
                    try:
                        with anyio.CancelScope(shield=True):
                            revision = await bucket.update(skey, _dump(fresh), revision=entry.revision)
                        return Claim(key, skey, revision, fresh)
                    except KeyExistsError:
                        continue
                if existing.fingerprint != wanted:
                    raise ServiceFailure(
                        ErrorCode.CONFLICT,
                        f"idempotency key {key[:80]!r} was used for another call ({existing.tool} with other "
                        "arguments); use a new key for a new operation", details={"idempotency_key": key[:200]})
                if existing.phase is not Phase.PENDING:
                    return existing
                if time.monotonic() >= deadline:
                    raise ServiceFailure(
                        ErrorCode.CONFLICT,
                        f"an earlier call with idempotency key {key[:80]!r} has not finished after "
                        f"{self.wait:g} s (or its gateway stopped before it could record the outcome, which is "
                        "then unknown); check the guest and its tasks before retrying with a new key",
                        retryable=True, details={"idempotency_key": key[:200]})
                await asyncio.sleep(self.poll_interval)
        except KvError:
            raise _unavailable() from None

    async def started(self, claim: Claim, *, upid: str, started: dict[str, Any], task_id: str | None = None) -> None:
        await self._write(claim, claim.record.model_copy(update={
            "phase": Phase.STARTED, "upid": upid, "started": started, "task_id": task_id}))

    async def finished(self, claim: Claim, *, result: dict[str, Any] | None = None,
                       error: ErrorInfo | None = None) -> None:
        await self._write(claim, claim.record.model_copy(update={"phase": Phase.DONE, "result": result,
                                                                 "error": error}))

    async def release(self, claim: Claim) -> None:
        """Forget the claim: nothing was done, so a retry with this key may do it."""
        try:
            bucket = await self._bucket()
            await bucket.delete(claim.store_key)
        except (KvError, ServiceFailure):
            log.warning("could not release an idempotency key; a retry waits for it to expire")

    async def _write(self, claim: Claim, record: KeyRecord) -> None:
        try:
            bucket = await self._bucket()
            claim.revision = await bucket.update(claim.store_key, _dump(record), revision=claim.revision)
            claim.record = record
        except (KvError, ServiceFailure) as exc:
            # The call itself is done and answered; a retry with this key then waits and is told the outcome is
            # unknown, which is true from the ledger's point of view.
            log.warning("could not record an idempotency key's outcome", extra={"error_type": type(exc).__name__})


def _dump(record: KeyRecord) -> bytes:
    return record.model_dump_json(exclude_none=True).encode()


def _load(raw: bytes) -> KeyRecord | None:
    try:
        return KeyRecord.model_validate_json(raw)
    except ValidationError:
        return None
