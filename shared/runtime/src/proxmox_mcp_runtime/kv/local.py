"""The key-value store of a single gateway: one SQLite file (WAL, synchronous=FULL: a write is on disk before the
call returns), shared with the CLI on the same host. Changes made by another process reach watchers within one
poll interval (SQLite's `data_version` tells when another connection committed)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TypeVar

from proxmox_mcp_runtime.kv.base import (
    BucketSpec,
    ChangeCallback,
    KeyExistsError,
    KvEntry,
    KvError,
    KvUnavailableError,
    check_key,
    check_ttl,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB, revision INTEGER NOT NULL, expires REAL,
    PRIMARY KEY (bucket, key));
CREATE TABLE IF NOT EXISTS revisions (bucket TEXT PRIMARY KEY, revision INTEGER NOT NULL);
"""
TOMBSTONE_SECONDS = 3600.0
"""Deleted keys are remembered this long, so a watcher in another process sees the deletion."""


class LocalState:
    """StateBackend over one SQLite file."""

    def __init__(self, path: Path, *, poll_interval: float = 0.25, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._watches: list[_LocalWatch] = []
        self._poller: asyncio.Task[None] | None = None
        self._data_version = -1

    @property
    def kind(self) -> str:
        return "local"

    async def bucket(self, spec: BucketSpec) -> LocalBucket:
        await self.run_db(lambda _db: None)
        return LocalBucket(self, spec)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._watches.clear()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = not self.path.exists()
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            if fresh:
                self.path.chmod(0o600)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def run_db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return fn(self._connection())
                except sqlite3.Error as exc:
                    raise KvUnavailableError(f"local state {self.path.name}: {type(exc).__name__}: {exc}") from None

        return await asyncio.to_thread(locked)

    @contextlib.contextmanager
    def transaction(self, db: sqlite3.Connection) -> Generator[sqlite3.Connection]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- watches -------------------------------------------------------------------------------------------

    def add_watch(self, watch: _LocalWatch) -> None:
        self._watches.append(watch)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    def remove_watch(self, watch: _LocalWatch) -> None:
        with contextlib.suppress(ValueError):
            self._watches.remove(watch)

    async def notify(self) -> None:
        for watch in list(self._watches):
            await watch.catch_up()

    async def _poll(self) -> None:
        while self._watches:
            await asyncio.sleep(self.poll_interval)
            try:
                version = await self.run_db(lambda db: int(db.execute("PRAGMA data_version").fetchone()[0]))
            except KvUnavailableError:
                continue
            if version != self._data_version:
                self._data_version = version
                await self.notify()


class LocalBucket:
    def __init__(self, state: LocalState, spec: BucketSpec) -> None:
        self.state = state
        self._state = state
        self._spec = spec

    @property
    def bucket(self) -> str:
        return self._spec.name

    def _expiry(self, ttl: float | None) -> float | None:
        lifetimes = [t for t in (ttl, self._spec.ttl) if t is not None]
        return self._state.clock() + min(lifetimes) if lifetimes else None

    def _live(self, row: tuple[bytes | None, int, float | None] | None) -> tuple[bytes, int] | None:
        if row is None or row[0] is None or (row[2] is not None and row[2] <= self._state.clock()):
            return None
        return row[0], row[1]

    def _row(self, db: sqlite3.Connection, key: str) -> tuple[bytes | None, int, float | None] | None:
        return db.execute("SELECT value, revision, expires FROM kv WHERE bucket = ? AND key = ?",
                          (self._spec.name, key)).fetchone()

    def _write(self, db: sqlite3.Connection, key: str, value: bytes | None, expires: float | None) -> int:
        name = self._spec.name
        db.execute("INSERT INTO revisions (bucket, revision) VALUES (?, 1) "
                   "ON CONFLICT (bucket) DO UPDATE SET revision = revision + 1", (name,))
        revision = int(db.execute("SELECT revision FROM revisions WHERE bucket = ?", (name,)).fetchone()[0])
        db.execute("INSERT INTO kv (bucket, key, value, revision, expires) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value, revision = excluded.revision, "
                   "expires = excluded.expires", (name, key, value, revision, expires))
        return revision

    async def _mutate(self, fn: Callable[[sqlite3.Connection], int]) -> int:
        def run(db: sqlite3.Connection) -> int:
            with self._state.transaction(db):
                return fn(db)

        revision = await self._state.run_db(run)
        await self._state.notify()
        return revision

    async def get(self, key: str) -> KvEntry | None:
        check_key(key)
        live = self._live(await self._state.run_db(lambda db: self._row(db, key)))
        return None if live is None else KvEntry(key, live[0], live[1])

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        check_key(key)
        check_ttl(ttl)

        def create(db: sqlite3.Connection) -> int:
            if self._live(self._row(db, key)) is not None:
                raise KeyExistsError(f"key exists in {self._spec.name}")
            return self._write(db, key, value, self._expiry(ttl))

        return await self._mutate(create)

    async def update(self, key: str, value: bytes, *, revision: int, ttl: float | None = None) -> int:
        check_key(key)
        check_ttl(ttl)

        def update(db: sqlite3.Connection) -> int:
            live = self._live(self._row(db, key))
            if live is None or live[1] != revision:
                raise KeyExistsError(f"key changed in {self._spec.name} (expected revision {revision})")
            return self._write(db, key, value, self._expiry(ttl))

        return await self._mutate(update)

    async def put(self, key: str, value: bytes) -> int:
        check_key(key)
        return await self._mutate(lambda db: self._write(db, key, value, self._expiry(None)))

    async def delete(self, key: str) -> None:
        check_key(key)
        tombstone_until = self._state.clock() + TOMBSTONE_SECONDS
        await self._mutate(lambda db: self._write(db, key, None, tombstone_until))

    async def keys(self) -> list[str]:
        now = self._state.clock()
        rows = await self._state.run_db(lambda db: db.execute(
            "SELECT key FROM kv WHERE bucket = ? AND value IS NOT NULL AND (expires IS NULL OR expires > ?) "
            "ORDER BY key", (self._spec.name, now)).fetchall())
        return [str(row[0]) for row in rows]

    async def changes_since(self, revision: int) -> list[KvEntry]:
        now = self._state.clock()
        rows = await self._state.run_db(lambda db: db.execute(
            "SELECT key, value, revision, expires FROM kv WHERE bucket = ? AND revision > ? ORDER BY revision",
            (self._spec.name, revision)).fetchall())
        entries: list[KvEntry] = []
        for key, value, rev, expires in rows:
            live = value is not None and (expires is None or expires > now)
            entries.append(KvEntry(str(key), bytes(value) if live and value is not None else None, int(rev)))
        return entries

    async def watch(self, on_change: ChangeCallback) -> _LocalWatch:
        watch = _LocalWatch(self, on_change)
        for entry in await self.changes_since(0):
            if entry.value is not None:
                on_change(entry)
            watch.revision = max(watch.revision, entry.revision)
        self._state.add_watch(watch)
        return watch


class _LocalWatch:
    def __init__(self, bucket: LocalBucket, on_change: ChangeCallback) -> None:
        self.bucket = bucket
        self.on_change = on_change
        self.revision = 0
        self._catching_up = asyncio.Lock()

    async def catch_up(self) -> None:
        async with self._catching_up:
            try:
                changes = await self.bucket.changes_since(self.revision)
            except KvError:
                return
            for entry in changes:
                if entry.revision > self.revision:
                    self.revision = entry.revision
                    self.on_change(entry)

    async def stop(self) -> None:
        self.bucket.state.remove_watch(self)
