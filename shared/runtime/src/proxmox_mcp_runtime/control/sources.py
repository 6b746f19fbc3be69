"""Where a process reads the freeze switch: the control bucket (gateways; workers with PMCP_STATE=jetstream), or
the gateway's relay on core NATS (workers with PMCP_STATE=local, where the state lives in the gateway's file)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from proxmox_mcp_contracts.control import FREEZE_KEY, FreezeBroadcast
from proxmox_mcp_contracts.subjects import CONTROL_FREEZE_REQUEST_SUBJECT, CONTROL_FREEZE_SUBJECT
from pydantic import ValidationError

from proxmox_mcp_runtime.control.guard import Observation, ProblemCallback, StateCallback, Stoppable
from proxmox_mcp_runtime.control.store import parse_state
from proxmox_mcp_runtime.kv import KeyValueStore, KvEntry

BucketOpener = Callable[[], Awaitable[KeyValueStore]]
INVALID_STATE = "the stored freeze state is not valid"
NO_RESPONDER_RETRY = 0.05


class ControlUnknownError(Exception):
    """The source answered that it does not know the state."""


class BucketFreezeSource:
    """The control bucket. On JetStream a get is answered by the bucket's stream leader (no direct gets on our
    buckets), so a process cut off from the cluster's majority gets no answer rather than a stale one."""

    def __init__(self, open_bucket: BucketOpener) -> None:
        self._open_bucket = open_bucket

    async def read(self) -> Observation:
        bucket = await self._open_bucket()
        entry = await bucket.get(FREEZE_KEY)
        try:
            return Observation(parse_state(entry), 0 if entry is None else entry.revision)
        except ValueError:
            raise ControlUnknownError(INVALID_STATE) from None

    async def watch(self, on_state: StateCallback, on_problem: ProblemCallback) -> Stoppable:
        bucket = await self._open_bucket()

        def changed(entry: KvEntry) -> None:
            if entry.key != FREEZE_KEY:
                return
            try:
                on_state(Observation(parse_state(entry), entry.revision))
            except ValueError:
                on_problem(INVALID_STATE)

        return await bucket.watch(changed)


def cached_opener(open_bucket: BucketOpener) -> BucketOpener:
    """Open the bucket once it can be (retried on each use until then)."""
    opened: list[KeyValueStore] = []
    lock = asyncio.Lock()

    async def opener() -> KeyValueStore:
        async with lock:
            if not opened:
                opened.append(await open_bucket())
        return opened[0]

    return opener


def _observation(data: bytes) -> Observation:
    broadcast = FreezeBroadcast.model_validate_json(data)
    if broadcast.state is None:
        raise ControlUnknownError(f"the gateway does not know it: {broadcast.problem or 'no reason given'}")
    return Observation(broadcast.state, broadcast.revision, broadcast.age)


class RelayFreezeSource:
    """The gateway's relay (local mode): broadcasts every interval and on change, and an answer when asked."""

    def __init__(self, nc: NatsClient, *, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def read(self) -> Observation:
        # No responder may only mean the gateway is a moment from subscribing (it just connected): ask again
        # until most of the timeout is spent, so that the caller's own timeout does not cut the answer off.
        deadline = time.monotonic() + self._timeout * 0.8
        while True:
            try:
                reply = await self._nc.request(CONTROL_FREEZE_REQUEST_SUBJECT, b"",
                                               timeout=max(deadline - time.monotonic(), 0.01))
                break
            except nats.errors.NoRespondersError:
                if time.monotonic() + NO_RESPONDER_RETRY >= deadline:
                    raise ControlUnknownError(
                        "no gateway answered on NATS (with PMCP_STATE=local the gateway tells the workers; "
                        "PMCP_STATE must be the same for the gateway and the workers)") from None
                await asyncio.sleep(NO_RESPONDER_RETRY)
        try:
            return _observation(reply.data)
        except ValidationError:
            raise ControlUnknownError("the gateway's answer is not a freeze state") from None

    async def watch(self, on_state: StateCallback, on_problem: ProblemCallback) -> Stoppable:
        async def received(msg: Msg) -> None:
            try:
                on_state(_observation(msg.data))
            except ControlUnknownError as exc:
                on_problem(str(exc))
            except ValidationError:
                on_problem("the gateway's broadcast is not a freeze state")

        subscription = await self._nc.subscribe(  # pyright: ignore[reportUnknownMemberType]
            CONTROL_FREEZE_SUBJECT, cb=received)
        return _Unsubscribe(subscription)


class _Unsubscribe:
    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._subscription.unsubscribe()
