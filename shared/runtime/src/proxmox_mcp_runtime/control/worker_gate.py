"""The freeze switch in a worker: every request is checked before its handler runs, with the scope the
contracts' table gives its operation (never what the request says about itself), so a request sent straight to
a worker's NATS subject is refused while the deployment is frozen, or while this worker cannot read the switch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.op_scopes import op_scope
from proxmox_mcp_contracts.subjects import WorkerKind

from proxmox_mcp_runtime.control.guard import ControlTiming, FreezeGuard, FreezeSource, FreezeStatus, above_read
from proxmox_mcp_runtime.control.sources import BucketFreezeSource, RelayFreezeSource, cached_opener
from proxmox_mcp_runtime.control.store import CONTROL_BUCKET
from proxmox_mcp_runtime.kv import KeyValueStore
from proxmox_mcp_runtime.kv.jetstream import JetStreamState

StateMode = Literal["local", "jetstream"]


def worker_source(nc: NatsClient, mode: StateMode, *, replicas: int, timing: ControlTiming) -> FreezeSource:
    """jetstream: the control bucket itself (watched, and read by its leader); local: the gateway's relay."""
    if mode == "local":
        return RelayFreezeSource(nc, timeout=timing.timeout)
    state = JetStreamState(nc, replicas=replicas, timeout=timing.timeout)

    async def open_bucket() -> KeyValueStore:
        return await state.bucket(CONTROL_BUCKET)

    return BucketFreezeSource(cached_opener(open_bucket))


class WorkerFreezeGate:
    def __init__(self, kind: WorkerKind, mode: StateMode, *, replicas: int = 3,
                 timing: ControlTiming | None = None) -> None:
        self.kind = kind
        self.mode: StateMode = mode
        self.replicas = replicas
        self.timing = timing or ControlTiming()
        self._guard: FreezeGuard | None = None

    async def start(self, nc: NatsClient) -> None:
        """Begin following the switch on the worker's own connection."""
        if self._guard is None:
            source = worker_source(nc, self.mode, replicas=self.replicas, timing=self.timing)
            self._guard = FreezeGuard(source, self.timing, name=f"{self.kind.value}-worker")
            self._guard.start()

    def status(self) -> FreezeStatus | None:
        return None if self._guard is None else self._guard.status()

    async def check(self, op: str, args: Mapping[str, Any]) -> None:
        """Raise the refusal of a request for op with these arguments, if the switch refuses it."""
        required = op_scope(self.kind, op, args)
        if self._guard is None:
            if above_read(required):
                raise ServiceFailure(ErrorCode.UNAVAILABLE, "the worker is not following the freeze switch yet",
                                     retryable=True)
            return
        await self._guard.check(required)

    async def stop(self) -> None:
        if self._guard is not None:
            await self._guard.stop()
