"""The audit chain on the writer's side: audit.AuditLog seals every batch here, in the order it writes it.

- The head (chain id, seq, MAC of the newest record) is recovered from the files at the first write and whenever
  the file is not as this process's last write left it (another process writing the same file, a rotation done
  by it, a crash that left half a line): the newest authentic record of the newest non-empty generation. Each
  batch is sealed and written under an exclusive flock on `<log>.lock`, so processes sharing a file share one
  chain instead of forking it.
- A new chain begins (its first record, seq 1, carries a `chain_start` field) only when the files and the anchor
  hold no record sealed with this key: a new log, a log from before chaining, or a changed key (it then names the
  previous chain's last record).
- The anchor file (default `<log>.anchor`) holds the chain's start and its durable head, HMAC'd, replaced
  atomically (fsync'd file and directory). AuditLog writes it when `anchor_interval` seconds or `anchor_every`
  records have passed since the last one, at a chain's start, before a rotation drops the oldest file (the
  start moves to the new oldest file's first record), and when the log closes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from proxmox_mcp_gateway.audit_chain import (
    Anchor,
    AnchorError,
    AuditKey,
    ChainHead,
    ChainPoint,
    Sealed,
    anchor_line,
    parse_anchor,
    parse_line,
    seal,
    utc_timestamp,
)
from proxmox_mcp_gateway.audit_read import file_generations

log = logging.getLogger(__name__)


def default_anchor_path(log_path: Path) -> Path:
    return log_path.with_name(f"{log_path.name}.anchor")


class ChainWriter:
    def __init__(self, path: Path, key: AuditKey, *, backups: int, anchor_path: Path | None = None,
                 anchor_interval: float = 1.0, anchor_every: int = 1000) -> None:
        self.path = path
        self.key = key
        self.backups = backups
        self.anchor_path = anchor_path or default_anchor_path(path)
        self.anchor_interval = anchor_interval
        self.anchor_every = anchor_every
        self._head: ChainHead | None = None
        self._base: ChainHead | None = None
        """The head before the batch being written (what rollback returns to)."""
        self._durable: ChainHead | None = None
        self._start: ChainPoint | None = None
        self._seen: tuple[int, int] | None = None
        """(inode, size) of the file as this process's last write left it."""
        self._opening: dict[str, Any] | None = None
        """The chain_start field of a new chain's first record, until that record is written."""
        self._anchored: ChainPoint | None = None
        self._anchored_at = 0.0
        self._since_anchor = 0
        self._anchor_now = False
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def locked(self) -> Generator[None]:
        if self._lock_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fd = os.open(self.path.with_name(f"{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def seal_batch(self, fd: int, records: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
        """Each record's line and its message id (chain.seq), sealed in order after the head."""
        # (records is never empty: AuditLog writes a batch only when something was appended)
        st = os.fstat(fd)
        if self._head is None or self._seen != (st.st_ino, st.st_size):
            self._recover(fd, st.st_size)
        assert self._head is not None
        self._base = head = self._head
        sealed: list[tuple[bytes, str]] = []
        for record in records:
            line, head = seal(record, self.key, head, self._opening if head.seq == 0 else None)
            sealed.append((line, f"{head.chain}.{head.seq}"))
        self._head = head
        return sealed

    def written(self, fd: int, count: int) -> None:
        st = os.fstat(fd)
        self._seen = (st.st_ino, st.st_size)
        self._since_anchor += count
        if self._opening is not None:
            self._opening = None
            self._anchor_now = True

    def failed(self) -> None:
        """The batch did not reach the file: its sequence numbers are given back; the file is read again."""
        self._head, self._seen = self._base, None

    def synced(self) -> None:
        self._durable = self._head

    # --- rotation ---

    def rotating(self) -> None:
        """Called before the log rotates; when the rotation drops the oldest file, the anchor's start moves to the
        first record of the file that becomes the oldest, and is written before anything is dropped."""
        assert self._base is not None
        name = self.path.name
        if self.backups > 0 and not self.path.with_name(f"{name}.{self.backups}").exists():
            return
        kept = [self.path.with_name(f"{name}.{index}") for index in range(self.backups - 1, 0, -1)]
        kept = [generation for generation in [*kept, self.path] if generation.exists()] if self.backups else []
        first = next(self._records_of(self._base.chain, kept), None)
        self._start = first.start if first else ChainPoint(self._base.seq + 1, self._base.mac)
        self._write_anchor(self._base)

    # --- anchor ---

    def anchor_wait(self, now: float | None = None) -> float | None:
        """Seconds until the anchor is due (0: now), None when it names the durable head already."""
        if self._durable is None or self._anchored == self._durable.point:
            return None
        if self._anchor_now or self._since_anchor >= self.anchor_every:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, self._anchored_at + self.anchor_interval - now)

    def write_anchor(self) -> None:
        if self._durable is not None and self._anchored != self._durable.point:
            self._write_anchor(self._durable)

    def _write_anchor(self, head: ChainHead) -> None:
        assert self._start is not None
        current = self._read_anchor()
        point = head.point
        if current is not None and current.chain == head.chain:
            # another process sharing the file may have anchored a newer head or moved the start by a rotation:
            # the anchor never goes back on either
            point = max(point, current.head, key=lambda p: p.seq)
            self._start = max(self._start, current.start, key=lambda p: p.seq)
            if point == current.head and self._start == current.start:
                self._mark_anchored(head)
                return
        self._replace_anchor(anchor_line(self.key, head.chain, self._start, point, utc_timestamp()))
        self._mark_anchored(head)

    def _mark_anchored(self, head: ChainHead) -> None:
        self._anchored, self._anchored_at, self._since_anchor, self._anchor_now = head.point, time.monotonic(), 0, False

    def _replace_anchor(self, data: bytes) -> None:
        temporary = self.anchor_path.with_name(f".{self.anchor_path.name}.{os.getpid()}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.anchor_path)
        _fsync_dir(self.anchor_path.parent)

    def _read_anchor(self) -> Anchor | None:
        try:
            data = self.anchor_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_anchor(data, {self.key.kid: self.key})
        except AnchorError as exc:
            log.warning("the audit anchor file cannot be used", extra={"path": str(self.anchor_path),
                                                                        "reason": str(exc)})
            return None

    # --- recovery ---

    def _recover(self, fd: int, size: int) -> None:
        if size:
            self._cut_torn_tail(fd, size)
        newest, other_key = self._newest_sealed()
        anchor = self._read_anchor()
        self._opening = None
        if newest is not None:
            head = newest.head
            if anchor is not None and anchor.chain == head.chain and anchor.head.seq > head.seq:
                log.error("the audit log ends before its anchor: records were cut off; the chain goes on after the "
                          "anchored head, so `proxmox-mcp audit verify` shows the gap",
                          extra={"log_seq": head.seq, "anchor_seq": anchor.head.seq})
                head = ChainHead(anchor.chain, anchor.head.seq, anchor.head.mac)
            if anchor is not None and anchor.chain == head.chain:
                self._start, self._anchored = anchor.start, anchor.head
            else:
                first = next(self._records_of(head.chain, file_generations(self.path)), None)
                self._start = first.start if first else ChainPoint(head.seq + 1, head.mac)
                self._anchor_now = True
        elif anchor is not None:
            log.error("the audit log holds none of the anchored chain's records; the chain goes on after the "
                      "anchored head, so `proxmox-mcp audit verify` shows the gap",
                      extra={"anchor_seq": anchor.head.seq})
            head = ChainHead(anchor.chain, anchor.head.seq, anchor.head.mac)
            self._start, self._anchored = anchor.start, anchor.head
        else:
            head = ChainHead.new(secrets.token_hex(8))
            self._start = ChainPoint(1, head.mac)
            self._opening = self._opening_record(other_key)
        self._head = head
        self._durable = None if self._opening is not None else head

    def _opening_record(self, previous: Sealed | None) -> dict[str, Any]:
        if previous is not None:
            reason = f"the audit key changed (the chain before was sealed with key id {previous.kid})"
        elif any(generation.stat().st_size for generation in file_generations(self.path)):
            reason = "the audit log had no record sealed with this key"
        else:
            reason = "new audit log"
        before = None if previous is None else {"chain": previous.chain, "seq": previous.seq, "mac": previous.mac}
        return {"reason": reason, "previous": before}

    def _cut_torn_tail(self, fd: int, size: int) -> None:
        """A crash in the middle of a write leaves half a line that was never acknowledged: cut it, so the next
        record starts on a line of its own."""
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            keep = 0
            for line_end in _newline_offsets_backwards(handle, size):
                keep = line_end + 1
                break
        os.ftruncate(fd, keep)
        log.warning("cut half a record (never acknowledged) from the end of the audit log",
                    extra={"bytes": size - keep})

    def _newest_sealed(self) -> tuple[Sealed | None, Sealed | None]:
        """The newest authentic record sealed with this key, and the newest sealed with another (whichever
        comes first from the end)."""
        for generation in reversed(file_generations(self.path)):
            for line in _lines_backwards(generation):
                parsed = parse_line(line)
                if not isinstance(parsed, Sealed):
                    continue
                if parsed.kid != self.key.kid:
                    return None, parsed
                if parsed.authentic(self.key):
                    return parsed, None
        return None, None

    def _records_of(self, chain: str, generations: list[Path]) -> Iterator[Sealed]:
        for generation in generations:
            with open(generation, "rb") as handle:
                for line in handle:
                    parsed = parse_line(line)
                    if isinstance(parsed, Sealed) and parsed.chain == chain and parsed.authentic(self.key):
                        yield parsed

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None


def _lines_backwards(path: Path, block: int = 64 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        rest = b""
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            lines = (handle.read(end - start) + rest).split(b"\n")
            rest = lines.pop(0) if start > 0 else b""
            for line in reversed(lines):
                if line.strip():
                    yield line
            end = start


def _newline_offsets_backwards(handle: Any, size: int, block: int = 64 * 1024) -> Iterator[int]:
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        chunk: bytes = handle.read(end - start)
        index = chunk.rfind(b"\n")
        while index >= 0:
            yield start + index
            index = chunk.rfind(b"\n", 0, index)
        end = start


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
