"""The key-value store of several gateway replicas: JetStream KV buckets (replicated on a NATS cluster), through
nats-py's own KV API. Every error that means "JetStream cannot answer now" becomes KvUnavailableError."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

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


@contextlib.asynccontextmanager
async def _mapped_errors(bucket: str) -> AsyncGenerator[None]:
    try:
        yield
    except nats.js.errors.KeyWrongLastSequenceError:
        raise KeyExistsError(f"key changed in {bucket}") from None
    except _UNAVAILABLE as exc:
        raise KvUnavailableError(f"JetStream did not answer for {bucket} ({type(exc).__name__})") from None
    except nats.js.errors.APIError as exc:
        raise KvError(f"JetStream refused an operation on {bucket}: {exc.description or type(exc).__name__}") from None


class JetStreamState:
    """StateBackend on JetStream. replicas: 3 on a 3-node cluster, 1 on a single server."""

    def __init__(self, nc: NatsClient, *, replicas: int = 1, memory: bool = False, timeout: float = 2.0) -> None:
        self.nc = nc
        self.replicas = replicas
        self.memory = memory
        self.js = JetStreamContext(nc, timeout=timeout)

    @property
    def kind(self) -> str:
        return "jetstream"

    async def bucket(self, spec: BucketSpec) -> JetStreamBucket:
        async with _mapped_errors(spec.name):
            try:
                kv = await self.js.key_value(spec.name)
            except nats.js.errors.BucketNotFoundError:
                storage = api.StorageType.MEMORY if self.memory else api.StorageType.FILE
                config = api.KeyValueConfig(bucket=spec.name, description=spec.description or None,
                                            history=spec.history, ttl=spec.ttl, replicas=self.replicas,
                                            storage=storage)
                kv = await self.js.create_key_value(config)  # pyright: ignore[reportUnknownMemberType]
        return JetStreamBucket(spec.name, kv)

    async def close(self) -> None:
        return None


class JetStreamBucket:
    def __init__(self, name: str, kv: KeyValue) -> None:
        self._name = name
        self._kv = kv

    @property
    def bucket(self) -> str:
        return self._name

    async def get(self, key: str) -> KvEntry | None:
        check_key(key)
        async with _mapped_errors(self._name):
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
        return None if entry.value is None else KvEntry(key, entry.value, int(entry.revision or 0))

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        check_key(key)
        async with _mapped_errors(self._name):
            return await self._kv.create(key, value, msg_ttl=ttl)

    async def update(self, key: str, value: bytes, *, revision: int) -> int:
        check_key(key)
        async with _mapped_errors(self._name):
            return await self._kv.update(key, value, last=revision)

    async def put(self, key: str, value: bytes) -> int:
        check_key(key)
        async with _mapped_errors(self._name):
            return await self._kv.put(key, value)

    async def delete(self, key: str) -> None:
        check_key(key)
        async with _mapped_errors(self._name):
            await self._kv.delete(key)

    async def keys(self) -> list[str]:
        async with _mapped_errors(self._name):
            try:
                return sorted(await self._kv.keys())  # pyright: ignore[reportUnknownMemberType]
            except nats.js.errors.NoKeysError:
                return []

    async def watch(self, on_change: ChangeCallback) -> JetStreamWatch:
        async with _mapped_errors(self._name):
            watcher = await self._kv.watchall()  # pyright: ignore[reportUnknownMemberType]
            while True:
                entry = await watcher.updates(timeout=30.0)
                if entry is None:
                    break
                converted = _entry(entry)
                if converted.value is not None:
                    on_change(converted)
        return JetStreamWatch(watcher, on_change)


def _entry(entry: Any) -> KvEntry:
    deleted = entry.operation in (KV_DEL, KV_PURGE)
    return KvEntry(str(entry.key), None if deleted else bytes(entry.value or b""), int(entry.revision or 0))


class JetStreamWatch:
    """Delivers the changes after the initial snapshot until stopped. nats-py's ordered consumer re-creates itself
    after a gap (a node lost, a reconnect), so changes keep coming once the cluster answers again."""

    def __init__(self, watcher: KeyValue.KeyWatcher, on_change: ChangeCallback) -> None:
        self._watcher = watcher
        self._on_change = on_change
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for entry in self._watcher:
            if entry is None:
                continue
            try:
                self._on_change(_entry(entry))
            except Exception:
                log.exception("a key-value watcher failed on a change")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._watcher.stop()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
