"""The audit log: one JSON line per call, written and fsync'd before the reply leaves (group commit).

Concurrent callers share one write+fsync: each append waits for the batch that holds its record, so the
durability guarantee holds without serializing every call on its own fsync. Size-based rotation keeps
`path.1 .. path.N`. A failed write raises AuditError (the caller fails closed) and is counted.

With a replica (PMCP_STATE=jetstream: the PMCP_AUDIT stream, audit_stream.py) each record is also stored there,
at the same time; append returns when both the fsync and the replica's acknowledgement are done, and fails when
either fails. `append` is the one place a record is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class AuditError(RuntimeError):
    """The record could not be made durable; the message says where and why (never the record)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable
        """The replicated store did not answer (no quorum, no connection): it may work again by itself."""


class AuditReplica(Protocol):
    async def store(self, line: bytes) -> None:
        """Return once the record (one JSON object, no newline) is stored; AuditError otherwise."""
        ...


def utc_timestamp(moment: float | None = None) -> str:
    now = time.time() if moment is None else moment
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class AuditLog:
    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024, backups: int = 5,
                 on_failure: Callable[[Exception], None] | None = None, replica: AuditReplica | None = None) -> None:
        self.path = path
        self.replica = replica
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
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
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
        line = (json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())
        if self.replica is None:
            # shield: a cancelled caller does not cancel the batch other callers wait on.
            await asyncio.shield(future)
            return
        outcomes = await asyncio.gather(asyncio.shield(future), self._store_replica(line[:-1]),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _store_replica(self, line: bytes) -> None:
        assert self.replica is not None
        try:
            await self.replica.store(line)
        except AuditError as exc:
            self.failures += 1
            self.replica_error = str(exc)
            if self.on_failure is not None:
                with contextlib.suppress(Exception):
                    self.on_failure(exc)
            raise
        self.replica_error = None

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            data = b"".join(line for line, _ in batch)
            try:
                await asyncio.to_thread(self._write_batch, data)
            except Exception as exc:
                failure = AuditError(f"the audit record could not be written to the local audit file "
                                     f"({type(exc).__name__})")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _write_batch(self, data: bytes) -> None:
        with self._io_lock:
            try:
                fd = self._open()
                if self._size and self._size + len(data) > self.max_bytes:
                    self._rotate()
                    fd = self._open()
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                self._size += len(data)
                self.written += data.count(b"\n")
                self.file_error = None
            except OSError as exc:
                self.failures += 1
                self.file_error = f"{type(exc).__name__}: {exc.strerror}"
                log.error("audit log write failed", extra={"error_type": type(exc).__name__,
                                                           "failures": self.failures})
                self._close()
                if self.on_failure is not None:
                    with contextlib.suppress(Exception):
                        self.on_failure(exc)
                raise

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
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        with self._io_lock:
            self._close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
