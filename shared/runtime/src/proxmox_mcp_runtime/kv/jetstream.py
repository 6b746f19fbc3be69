"""The key-value store of several gateway replicas: JetStream KV buckets (replicated on a NATS cluster), through
nats-py's own KV API. Every error that means "JetStream cannot answer now" becomes KvUnavailableError."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

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

log = logging.getLogger(__name__)

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    TimeoutError,
)
_NOTHING_DONE: tuple[type[BaseException], ...] = (
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)
"""Of those, the answers that say the operation never reached a stream leader (no leader while one is elected,
no responders, not sent): trying again cannot apply it twice. A timeout may come after the leader applied it."""
_WRONG_LAST_SEQUENCE = (10071, 10164)
"""JSStreamWrongLastSequenceErrF and its constant form: a compare-and-set lost."""


class _NotApplied(KvUnavailableError):
    """JetStream cannot answer now, and the operation was certainly not applied."""


def _unavailable(bucket: str, exc: BaseException) -> KvUnavailableError:
    kind = _NotApplied if isinstance(exc, _NOTHING_DONE) else KvUnavailableError
    return kind(f"JetStream did not answer for {bucket} ({type(exc).__name__})")


@contextlib.asynccontextmanager
async def _mapped_errors(bucket: str) -> AsyncGenerator[None]:
    try:
        yield
    except nats.js.errors.KeyWrongLastSequenceError:
        raise KeyExistsError(f"key changed in {bucket}") from None
    except nats.js.errors.APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            raise KeyExistsError(f"key changed in {bucket}") from None
        if isinstance(exc, _UNAVAILABLE):
            raise _unavailable(bucket, exc) from None
        raise KvError(f"JetStream refused an operation on {bucket}: {exc.description or type(exc).__name__}") from None
    except _UNAVAILABLE as exc:
        raise _unavailable(bucket, exc) from None


T = TypeVar("T")


async def _patiently(operation: Callable[[], Awaitable[T]], *, patience: float, read: bool) -> T:
    """The operation, tried again while JetStream cannot answer (a stream leader election takes ~5 s) for up to
    `patience` seconds. A read is tried again after any such failure; a write only when it was certainly not
    applied, since a compare-and-set sent twice would find its own first write."""
    deadline = time.monotonic() + patience
    delay = 0.02
    while True:
        try:
            return await operation()
        except KvUnavailableError as exc:
            if not (read or isinstance(exc, _NotApplied)) or time.monotonic() + delay >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


class JetStreamState:
    """StateBackend on JetStream. replicas: 3 on a 3-node cluster, 1 on a single server."""

    def __init__(self, nc: NatsClient, *, replicas: int = 1, memory: bool = False, timeout: float = 2.0,
                 patience: float = 0.0) -> None:
        """timeout: one request's; patience: how long an operation is tried again while JetStream cannot answer
        (see _patiently; 0: fail at once)."""
        self.nc = nc
        self.replicas = replicas
        self.memory = memory
        self.patience = patience
        self.js = JetStreamContext(nc, timeout=timeout)

    @property
    def kind(self) -> str:
        return "jetstream"

    async def bucket(self, spec: BucketSpec) -> JetStreamBucket:
        async def open_or_create() -> KeyValue:
            async with _mapped_errors(spec.name):
                try:
                    return await self.js.key_value(spec.name)
                except nats.js.errors.BucketNotFoundError:
                    storage = api.StorageType.MEMORY if self.memory else api.StorageType.FILE
                    config = api.KeyValueConfig(bucket=spec.name, description=spec.description or None,
                                                history=spec.history, ttl=spec.ttl, replicas=self.replicas,
                                                storage=storage)
                    return await self.js.create_key_value(config)  # pyright: ignore[reportUnknownMemberType]

        # Creating a bucket that exists with the same configuration succeeds: trying again is safe.
        kv = await _patiently(open_or_create, patience=self.patience, read=True)
        return JetStreamBucket(spec.name, kv, self.js, patience=self.patience)

    async def close(self) -> None:
        return None


class JetStreamBucket:
    def __init__(self, name: str, kv: KeyValue, js: JetStreamContext, *, patience: float = 0.0) -> None:
        self._name = name
        self._kv = kv
        self._js = js
        self._patience = patience

    @property
    def bucket(self) -> str:
        return self._name

    async def _read(self, operation: Callable[[], Awaitable[T]]) -> T:
        async def mapped() -> T:
            async with _mapped_errors(self._name):
                return await operation()
        return await _patiently(mapped, patience=self._patience, read=True)

    async def _write(self, operation: Callable[[], Awaitable[T]]) -> T:
        async def mapped() -> T:
            async with _mapped_errors(self._name):
                return await operation()
        return await _patiently(mapped, patience=self._patience, read=False)

    async def get(self, key: str) -> KvEntry | None:
        check_key(key)

        async def read() -> KvEntry | None:
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
            return None if entry.value is None else KvEntry(key, entry.value, int(entry.revision or 0))

        return await self._read(read)

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        check_key(key)
        seconds = check_ttl(ttl)
        return await self._write(lambda: self._kv.create(key, value, msg_ttl=seconds))

    async def update(self, key: str, value: bytes, *, revision: int, ttl: float | None = None) -> int:
        check_key(key)
        seconds = check_ttl(ttl)
        if seconds is None:
            return await self._write(lambda: self._kv.update(key, value, last=revision))

        async def update_with_ttl() -> int:
            # KeyValue.update takes no ttl: the same compare-and-set publish with the Nats-TTL header.
            ack = await self._js.publish(f"$KV.{self._name}.{key}", value, msg_ttl=seconds,
                                         headers={api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(revision)})
            return ack.seq

        return await self._write(update_with_ttl)

    async def put(self, key: str, value: bytes) -> int:
        check_key(key)
        return await self._write(lambda: self._kv.put(key, value))

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._write(lambda: self._kv.delete(key))

    async def keys(self) -> list[str]:
        async def read() -> list[str]:
            try:
                return sorted(await self._kv.keys())  # pyright: ignore[reportUnknownMemberType]
            except nats.js.errors.NoKeysError:
                return []

        return await self._read(read)

    async def watch(self, on_change: ChangeCallback) -> JetStreamWatch:
        watcher, snapshot = await self.snapshot()
        revision = 0
        for entry in snapshot:
            revision = max(revision, entry.revision)
            if entry.value is not None:
                on_change(entry)
        return JetStreamWatch(self, watcher, on_change, revision)

    async def snapshot(self) -> tuple[KeyValue.KeyWatcher, list[KvEntry]]:
        """A new watcher and the bucket's current entries (deleted keys included, value None)."""
        async with _mapped_errors(self._name):
            watcher = await self._kv.watchall()  # pyright: ignore[reportUnknownMemberType]
            entries: list[KvEntry] = []
            try:
                while True:
                    entry = await watcher.updates(timeout=30.0)
                    if entry is None:
                        break
                    entries.append(_entry(entry))
            except BaseException:
                with contextlib.suppress(Exception):
                    await watcher.stop()
                raise
        return watcher, entries

    async def last_revision(self) -> int:
        """The bucket's latest revision (its stream's last sequence)."""
        async with _mapped_errors(self._name):
            status = await self._kv.status()
        return int(status.stream_info.state.last_seq)


def _entry(entry: Any) -> KvEntry:
    deleted = entry.operation in (KV_DEL, KV_PURGE)
    return KvEntry(str(entry.key), None if deleted else bytes(entry.value or b""), int(entry.revision or 0))


class JetStreamWatch:
    """Delivers the changes after the initial snapshot until stopped.

    nats-py's ordered consumer re-creates itself after missing two idle heartbeats (5 s each), and only then: when
    the node holding it dies while the cluster elects a new stream leader, the first re-creation fails and the
    watch falls ~20 s behind (measured on the 3-node test cluster). So the watch also compares its revision with
    the bucket's every `check_interval` and, behind for `stale_after`, starts a new watcher from a fresh snapshot
    (which also delivers the keys deleted meanwhile): changes resume a few seconds after the cluster answers.
    """

    def __init__(self, bucket: JetStreamBucket, watcher: KeyValue.KeyWatcher, on_change: ChangeCallback,
                 revision: int, *, check_interval: float = 1.0, stale_after: float = 2.0) -> None:
        self.revision = revision
        """The latest revision delivered."""
        self.restarts = 0
        self._bucket = bucket
        self._watcher = watcher
        self._on_change = on_change
        self._check_interval = check_interval
        self._stale_after = stale_after
        self._task = asyncio.create_task(self._run(watcher))
        self._guard = asyncio.create_task(self._keep_current())

    def _deliver(self, entry: KvEntry) -> None:
        self.revision = max(self.revision, entry.revision)
        try:
            self._on_change(entry)
        except Exception:
            log.exception("a key-value watcher failed on a change")

    async def _run(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                self._deliver(_entry(entry))

    async def _keep_current(self) -> None:
        behind_since: float | None = None
        while True:
            await asyncio.sleep(self._check_interval)
            try:
                latest = await self._bucket.last_revision()
            except KvError:
                continue  # the cluster does not answer: nothing to catch up with yet
            if latest <= self.revision:
                behind_since = None
                continue
            now = time.monotonic()
            if behind_since is None:
                behind_since = now
            elif now - behind_since >= self._stale_after:
                behind_since = None
                await self._restart(latest)

    async def _restart(self, latest: int) -> None:
        try:
            watcher, snapshot = await self._bucket.snapshot()
        except KvError:
            return
        old, self._watcher = self._watcher, watcher
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await old.stop()
        for entry in snapshot:
            self._deliver(entry)
        # Revisions the watcher never delivers (markers it skips) must not make it look behind for ever.
        self.revision = max(self.revision, latest)
        self.restarts += 1
        log.warning("a key-value watch fell behind and was restarted", extra={"bucket": self._bucket.bucket})
        self._task = asyncio.create_task(self._run(watcher))

    async def stop(self) -> None:
        self._guard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._guard
        with contextlib.suppress(Exception):
            await self._watcher.stop()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
