"""The gateway's shared state: key-value buckets opened on first use, on the backend PMCP_STATE chooses.

`local` (the default: one gateway) keeps them in STATE_DIR/state.db; `jetstream` (several gateway replicas) in
JetStream KV buckets on the gateway's own NATS connection, replicated PMCP_STATE_REPLICAS times. Until NATS is
connected a JetStream bucket cannot be opened: callers get KvUnavailableError and must fail closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from proxmox_mcp_runtime.kv import BucketSpec, KeyValueStore, KvUnavailableError, StateBackend
from proxmox_mcp_runtime.kv.jetstream import JetStreamState
from proxmox_mcp_runtime.kv.local import LocalState

from proxmox_mcp_gateway.settings import GatewaySettings

BackendOpener = Callable[[], Awaitable[StateBackend]]


class SharedState:
    def __init__(self, kind: str, open_backend: BackendOpener) -> None:
        self.kind = kind
        self._open_backend = open_backend
        self._backend: StateBackend | None = None
        self._buckets: dict[str, KeyValueStore] = {}
        self._lock = asyncio.Lock()

    async def bucket(self, spec: BucketSpec) -> KeyValueStore:
        """The bucket, created with spec the first time any replica asks for it."""
        cached = self._buckets.get(spec.name)
        if cached is not None:
            return cached
        async with self._lock:
            if spec.name not in self._buckets:
                if self._backend is None:
                    self._backend = await self._open_backend()
                self._buckets[spec.name] = await self._backend.bucket(spec)
        return self._buckets[spec.name]

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()
        self._backend = None
        self._buckets.clear()


def shared_state_for(settings: GatewaySettings, nats_client: Callable[[], NatsClient | None]) -> SharedState:
    """nats_client: the gateway's connection as it is now (None before the first connect)."""
    if settings.state == "jetstream":
        replicas = settings.state_replicas
        patience = settings.state_timeout

        async def open_jetstream() -> StateBackend:
            nc = nats_client()
            if nc is None or not nc.is_connected:
                raise KvUnavailableError("the gateway is not connected to NATS, so its shared state cannot be read")
            # Task records and idempotency keys wait through a leader election like the audit and rate writes.
            return JetStreamState(nc, replicas=replicas, patience=patience)

        return SharedState("jetstream", open_jetstream)
    path = settings.state_dir / "state.db"

    async def open_local() -> StateBackend:
        return LocalState(path)

    return SharedState("local", open_local)
