"""Reading the audit log back: the PMCP_AUDIT stream (PMCP_STATE=jetstream) or the local file and its rotated
backups, oldest first, as the JSON lines that were written; optionally following new records as they come."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import nats.errors
from nats.js import JetStreamContext, api

from proxmox_mcp_gateway.state_names import AUDIT_STREAM, AUDIT_SUBJECTS


@dataclass(frozen=True)
class ReadFrom:
    """Which records: every one (the default), those stored at/after a moment, the last N of those kept."""

    last: int | None = None
    since: datetime | None = None
    only_new: bool = False
    """Follow mode without last/since: start with the records stored from now on."""
    keep: Callable[[bytes], bool] | None = None
    """A filter (token, tool); `last` counts only the records it keeps."""

    def kept(self, line: bytes) -> bool:
        return self.keep is None or self.keep(line)


async def stream_lines(js: JetStreamContext, start: ReadFrom, *, follow: bool,
                       poll: float = 1.0) -> AsyncGenerator[bytes]:
    """The stream's records in order. Without follow, ends with the last record stored when reading began."""
    info = await js.stream_info(AUDIT_STREAM)
    first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)
    if start.since is not None:
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=start.since)
    elif start.last is not None and start.keep is None:  # the last N: no need to read what comes before them
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=max(first, last - start.last + 1, 1))
    elif start.only_new and start.last is None:  # after the last one now: nothing stored meanwhile is missed
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=last + 1)
    if not follow and last == 0:
        return
    sub = await js.subscribe(AUDIT_SUBJECTS, stream=AUDIT_STREAM, config=config, ordered_consumer=True)
    held: deque[bytes] = deque(maxlen=start.last)  # only with `last`: the N newest kept while catching up
    caught_up = last == 0 or config.opt_start_seq == last + 1
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=poll)
            except nats.errors.TimeoutError:
                if not caught_up:  # nothing more to deliver: the start lies past the records, or they are gone
                    caught_up = True
                    for line in _last(held, start.last):
                        yield line
                if follow:
                    continue
                return
            if caught_up or start.last is None:
                if start.kept(msg.data):
                    yield msg.data
                if caught_up:
                    continue
            elif start.kept(msg.data):
                held.append(msg.data)
            if msg.metadata.sequence.stream >= last or msg.metadata.num_pending == 0:
                caught_up = True
                for line in _last(held, start.last):
                    yield line
                if not follow:
                    return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def _last(lines: deque[bytes], count: int | None) -> list[bytes]:
    return [] if count == 0 else list(lines)


def file_generations(path: Path) -> list[Path]:
    """The rotated backups oldest first (path.N .. path.1), then the file itself."""
    pattern = re.compile(rf"^{re.escape(path.name)}\.(\d+)$")
    backups: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            match = pattern.match(candidate.name)
            if match:
                backups.append((int(match.group(1)), candidate))
    return [p for _, p in sorted(backups, reverse=True)] + ([path] if path.exists() else [])


_TS = re.compile(rb'"ts":"([0-9T:.\-]+)Z"')


def stored_at(line: bytes) -> datetime | None:
    """The record's own time stamp (`ts`, UTC)."""
    match = _TS.search(line)
    if match is None:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(match.group(1).decode() + "+00:00")
    return None


async def file_lines(path: Path, start: ReadFrom, *, follow: bool, poll: float = 0.25) -> AsyncGenerator[bytes]:
    """The file's records (backups first); following, new lines as they are written, across rotations (a file
    rotated twice within one poll interval loses the middle generation to a follower; export reads them all)."""
    handle = _open(path)
    try:
        current = await asyncio.to_thread(handle.read) if handle is not None else b""
        *complete, partial = current.split(b"\n")
        if not start.only_new or start.last is not None or start.since is not None:
            older = [generation for generation in file_generations(path) if generation != path]
            lines = [line for generation in older
                     for line in (await asyncio.to_thread(generation.read_bytes)).splitlines()]
            for line in _selected([*lines, *complete], start):
                yield line
        if not follow:
            return
        inode = os.fstat(handle.fileno()).st_ino if handle is not None else None
        buffer = partial
        while True:
            if handle is None:
                handle = _open(path)
                if handle is None:
                    await asyncio.sleep(poll)
                    continue
                inode, buffer = os.fstat(handle.fileno()).st_ino, b""
            chunk = handle.read()
            if chunk:
                *complete, buffer = (buffer + chunk).split(b"\n")
                for line in complete:
                    if line.strip() and start.kept(line):
                        yield line
                continue
            if _replaced(path, inode):  # rotated: the old file is read to its end, the new one from its start
                handle.close()
                handle = None
                continue
            await asyncio.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def _selected(lines: list[bytes], start: ReadFrom) -> list[bytes]:
    lines = [line for line in lines if line.strip() and start.kept(line)]
    if start.last is not None:
        return lines[-start.last:] if start.last > 0 else []
    if start.since is not None:
        since = start.since
        return [line for line in lines if (stored_at(line) or since) >= since]
    return lines


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")  # kept open while following
    except FileNotFoundError:
        return None


def _replaced(path: Path, inode: int | None) -> bool:
    try:
        return os.stat(path).st_ino != inode
    except FileNotFoundError:
        return True
