"""The audit log: one JSON line per call, written and fsync'd before the reply leaves (group commit).

Concurrent callers share one write+fsync: each append waits for the batch that holds its record, so the
durability guarantee holds without serializing every call on its own fsync. Size-based rotation keeps
`path.1 .. path.N`. A failed write raises AuditError (the caller fails closed) and is counted.

With a ChainWriter (audit_chain_writer.py; every gateway has one) each record is sealed into the tamper-evident
chain inside the writer, under its lock, in the order the batch is written: a batch that fails to reach the file
gives its sequence numbers back, so the chain in the file has no holes of its own making.

With a replica (PMCP_STATE=jetstream: the PMCP_AUDIT stream, audit_stream.py) each record is also stored there:
the sealed line is published once it is written to the file, while the file is fsync'd; append returns when both
the fsync and the replica's acknowledgement are done, and fails when either fails. A record the replica did not
take is stored again in the background (same message id, so a copy that got there after all is dropped), so the
stream's copy of the chain has no holes either while the gateway runs. `append` is the one place a record is
written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from proxmox_mcp_gateway.audit_chain import dumps, utc_timestamp
from proxmox_mcp_gateway.audit_chain_writer import ChainWriter

__all__ = ["AuditError", "AuditLog", "AuditReplica", "utc_timestamp"]

log = logging.getLogger(__name__)

REPLAY_BACKLOG = 100_000
"""Records kept for storing again in the replica; past that the oldest are dropped (and logged)."""


class AuditError(RuntimeError):
    """The record could not be made durable; the message says where and why (never the record)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable
        """The replicated store did not answer (no quorum, no connection): it may work again by itself."""


class AuditReplica(Protocol):
    async def store(self, line: bytes, message_id: str) -> None:
        """Return once the record (one JSON object, no newline) is stored; AuditError otherwise. The same
        message id for the same record: a store repeated within the replica's duplicate window keeps one copy."""
        ...


_Written = tuple[bytes, str, "asyncio.Future[None]"]
"""A record's line as written, its message id, and the future of its batch's fsync."""


class AuditLog:
    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024, backups: int = 5,
                 on_failure: Callable[[Exception], None] | None = None, replica: AuditReplica | None = None,
                 chain: ChainWriter | None = None) -> None:
        self.path = path
        self.replica = replica
        self.chain = chain
        self.max_bytes = max_bytes
        self.backups = backups
        self.on_failure = on_failure
        self.failures = 0
        """Writes that failed since start (exported as a metric by the ops side)."""
        self.written = 0
        self.file_error: str | None = None
        self.replica_error: str | None = None
        self._fd: int | None = None
        self._ino: int | None = None
        self._size = 0
        self._unsynced = 0
        self._pending: list[tuple[dict[str, Any], asyncio.Future[_Written]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._anchoring: asyncio.Task[None] | None = None
        self._backlog: deque[tuple[bytes, str]] = deque()
        self._replaying: asyncio.Task[None] | None = None
        self._io_lock = threading.Lock()

    @property
    def last_error(self) -> str | None:
        return self.file_error or self.replica_error

    @property
    def healthy(self) -> bool:
        """False after a failed write (file or replica), until the next write there succeeds."""
        return self.last_error is None

    async def append(self, record: dict[str, Any]) -> None:
        """Durably append one record; AuditError if it could not be written."""
        future: asyncio.Future[_Written] = asyncio.get_running_loop().create_future()
        self._pending.append((dict(record), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())
        # shield: a cancelled caller does not cancel the batch other callers wait on.
        line, message_id, synced = await asyncio.shield(future)
        if self.replica is None:
            await asyncio.shield(synced)
            return
        outcomes = await asyncio.gather(asyncio.shield(synced), self._store_replica(line[:-1], message_id),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _store_replica(self, line: bytes, message_id: str) -> None:
        assert self.replica is not None
        try:
            await self.replica.store(line, message_id)
        except AuditError as exc:
            self.failures += 1
            self.replica_error = str(exc)
            self._keep_for_replay(line, message_id)
            if self.on_failure is not None:
                with contextlib.suppress(Exception):
                    self.on_failure(exc)
            raise
        self.replica_error = None

    def _keep_for_replay(self, line: bytes, message_id: str) -> None:
        if len(self._backlog) >= REPLAY_BACKLOG:
            self._backlog.popleft()
            log.error("an audit record the replica did not take was dropped from the replay backlog (full)",
                      extra={"backlog": REPLAY_BACKLOG})
        self._backlog.append((line, message_id))
        if self._replaying is None or self._replaying.done():
            self._replaying = asyncio.create_task(self._replay())

    async def _replay(self) -> None:
        """Store the records the replica did not take, oldest first, until it takes them (the file has them)."""
        assert self.replica is not None
        delay = 0.5
        while self._backlog:
            line, message_id = self._backlog[0]
            try:
                await self.replica.store(line, message_id)
            except AuditError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            except Exception:
                log.exception("storing an audit record in the replica again failed")
                await asyncio.sleep(delay)
                continue
            if self._backlog and self._backlog[0][1] == message_id:
                self._backlog.popleft()
            delay = 0.5

    @property
    def unreplicated(self) -> int:
        """Records in the file the replica has not acknowledged yet (stored again in the background)."""
        return len(self._backlog)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                lines = await asyncio.to_thread(self._write_batch, [record for record, _ in batch])
            except Exception as exc:
                failure = AuditError(f"the audit record could not be written to the local audit file "
                                     f"({type(exc).__name__})")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            synced: asyncio.Future[None] = loop.create_future()
            for (_, future), (line, message_id) in zip(batch, lines, strict=True):
                if not future.done():
                    future.set_result((line, message_id, synced))
            try:
                await asyncio.to_thread(self._sync)
            except Exception as exc:
                synced.set_exception(AuditError(f"the audit record could not be written to the local audit file "
                                                f"({type(exc).__name__})"))
                synced.exception()  # retrieved here: a batch whose callers all left must not warn
            else:
                synced.set_result(None)
                self._schedule_anchor()

    def _write_batch(self, records: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
        """Seal (with a chain) and write the batch, not yet fsync'd: the lines and message ids, in order."""
        with self._io_lock:
            try:
                with self.chain.locked() if self.chain is not None else contextlib.nullcontext():
                    return self._write_locked(records)
            except OSError as exc:
                self._failed(exc)
                raise

    def _write_locked(self, records: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
        before: int | None = None
        try:
            fd = self._open()
            if self.chain is not None:
                lines = self.chain.seal_batch(fd, records)
                # under the lock the file's size is what counts: another process may have written to it, or the
                # chain cut a torn line from its end
                self._size = os.fstat(fd).st_size
            else:
                lines = [(dumps(record) + b"\n", uuid.uuid4().hex) for record in records]
            data = b"".join(line for line, _ in lines)
            if self._size and self._size + len(data) > self.max_bytes:
                if self.chain is not None:
                    self.chain.rotating()
                self._rotate()
                fd = self._open()
            before = self._size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            if self.chain is not None:
                self.chain.failed()
            if before is not None and self._fd is not None:
                with contextlib.suppress(OSError):  # no half batch left for the next one to follow
                    os.ftruncate(self._fd, before)
            raise
        self._size += len(data)
        self._unsynced += len(lines)
        if self.chain is not None:
            self.chain.written(fd, len(lines))
        return lines

    def _sync(self) -> None:
        with self._io_lock:
            try:
                if self._fd is not None:
                    os.fsync(self._fd)
                if self.chain is not None:
                    self.chain.synced()
                self.written += self._unsynced
                self._unsynced = 0
                self.file_error = None
            except OSError as exc:
                self._failed(exc)
                raise

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self.file_error = f"{type(exc).__name__}: {exc.strerror}"
        log.error("audit log write failed", extra={"error_type": type(exc).__name__, "failures": self.failures})
        self._close()
        if self.on_failure is not None:
            with contextlib.suppress(Exception):
                self.on_failure(exc)

    # --- the chain's anchor ---

    def _schedule_anchor(self) -> None:
        if self.chain is None or (self._anchoring is not None and not self._anchoring.done()):
            return
        if self.chain.anchor_wait() is not None:
            self._anchoring = asyncio.create_task(self._anchor_when_due())

    async def _anchor_when_due(self) -> None:
        assert self.chain is not None
        while (wait := self.chain.anchor_wait()) is not None:
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await asyncio.to_thread(self._write_anchor)
            except OSError as exc:
                log.error("the audit anchor could not be written", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(self.chain.anchor_interval)

    def _write_anchor(self) -> None:
        assert self.chain is not None
        with self._io_lock, self.chain.locked():
            self.chain.write_anchor()

    # --- the file ---

    def _open(self) -> int:
        if self._fd is not None:
            try:
                same = os.stat(self.path).st_ino == self._ino
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
            self._close()  # moved or deleted under us (logrotate): start a new file at the path
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        st = os.fstat(fd)
        self._fd, self._ino, self._size = fd, st.st_ino, st.st_size
        if st.st_size == 0:
            _fsync_dir(self.path.parent)
        return fd

    def _rotate(self) -> None:
        self._close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            os.unlink(self.path)
        _fsync_dir(self.path.parent)

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._ino = None
        self._size = 0

    async def close(self) -> None:
        """Waits for the records under way, anchors the chain's head, stops storing the replay backlog."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        for task in (self._anchoring, self._replaying):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._backlog:
            log.error("audit records the replica never took stay only in the local audit file",
                      extra={"records": len(self._backlog)})
        if self.chain is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self._write_anchor)
        with self._io_lock:
            self._close()
            if self.chain is not None:
                self.chain.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
