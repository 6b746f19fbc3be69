"""Rate limits and concurrency caps that hold across gateway replicas (PMCP_STATE=jetstream).

Rate limits are sliding windows kept by JetStream itself. Each `N/PERIOD` spec in use has a stream
(PMCP_RATE_<N>_<ms>, in memory, PMCP_STATE_REPLICAS replicas) with `max_msgs_per_subject=N`, `max_age=PERIOD`,
`discard=new` and `discard_new_per_subject`; a call publishes one empty message per limit that applies to it
(subject `pmcp.rate.<N>_<ms>.<token>[.<tool>]`) and the server refuses the publish when that subject already
holds N messages younger than PERIOD. So at most N calls pass in any PERIOD, counted once for all gateways,
and Retry-After is when the oldest of the N ages out. The local token bucket (PMCP_STATE=local) differs: it
allows a burst of N and then one call every PERIOD/N; the window allows N in a burst and then nothing until the
burst's first call is PERIOD old. When the token's and the tool's window are both checked and only one says
no, the message taken from the other is deleted again, so a refused call counts nowhere.

Concurrency caps are slots: keys `<token>.<n>` (n < the cap) in the KV bucket PMCP_SLOTS, created with
compare-and-set and a per-entry TTL (PMCP_SLOT_TTL) that the holding gateway renews every third of it; a
gateway that dies holding slots loses them when their TTL runs out.

If JetStream does not answer within PMCP_STATE_TIMEOUT (no quorum), the call is refused (`unavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats.js.errors
from nats.js import api
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.kv import KeyExistsError, KeyValueStore, KvError, KvUnavailableError

from proxmox_mcp_gateway.jetstream_calls import (
    UNANSWERED,
    JetStreamContexts,
    NotConnected,
    ensure_stream,
    name_token,
    until_answered,
)
from proxmox_mcp_gateway.limits import RateSpec, rate_limited
from proxmox_mcp_gateway.state_names import rate_stream

log = logging.getLogger(__name__)

MAX_MSGS_PER_SUBJECT_EXCEEDED = 10077


def unavailable(what: str, timeout: float) -> ServiceFailure:
    return ServiceFailure(ErrorCode.UNAVAILABLE, f"the shared {what} on NATS JetStream did not answer within "
                          f"{timeout:g} s (no quorum?), so the call was refused; retry shortly", retryable=True)


@dataclass(frozen=True)
class Window:
    """A sliding window: at most `capacity` calls in any `period` seconds."""

    capacity: int
    period: float

    @classmethod
    def of(cls, spec: RateSpec) -> Window:
        """A fractional N (e.g. 2.5/s) counts whole calls: floor(N), at least 1."""
        return cls(capacity=max(1, int(spec.capacity)), period=spec.period)

    @property
    def stream(self) -> tuple[str, str]:
        return rate_stream(self.capacity, round(self.period * 1000))

    def config(self, replicas: int) -> api.StreamConfig:
        name, prefix = self.stream
        return api.StreamConfig(
            name=name, description=f"proxmox-mcp rate windows of {self.capacity} calls per {self.period:g} s",
            subjects=[f"{prefix}.>"], storage=api.StorageType.MEMORY, num_replicas=replicas,
            max_msgs_per_subject=self.capacity, max_age=self.period, discard=api.DiscardPolicy.NEW,
            discard_new_per_subject=True, duplicate_window=min(self.period, 120.0), allow_direct=True)


@dataclass(frozen=True)
class WindowCheck:
    window: Window
    key: str
    """The counted thing below the stream's prefix: `<token>` or `<token>.<tool>`."""
    what: str
    limit: str
    """token | tool (the metrics label of a refusal)."""

    @property
    def subject(self) -> str:
        return f"{self.window.stream[1]}.{self.key}"


class _WindowFull(Exception):
    pass


class JetStreamRates:
    def __init__(self, contexts: JetStreamContexts, *, replicas: int, timeout: float) -> None:
        self._contexts = contexts
        self.replicas = replicas
        self.timeout = timeout
        self._ensured: set[str] = set()

    async def _ensure(self, window: Window) -> None:
        name = window.stream[0]
        if name not in self._ensured:
            await ensure_stream(self._contexts.get(), window.config(self.replicas))
            self._ensured.add(name)

    async def _count(self, check: WindowCheck) -> int | None:
        """The sequence of the message that counts this call, or None when the window is full."""
        headers: dict[str, str] = {api.Header.MSG_ID.value: f"{time.time_ns()}-{random.getrandbits(48):x}"}

        async def publish(seconds: float) -> int:
            await self._ensure(check.window)
            try:
                ack = await self._contexts.get().publish(check.subject, b"", headers=headers, timeout=seconds)
            except nats.js.errors.ServiceUnavailableError as exc:
                if exc.err_code == MAX_MSGS_PER_SUBJECT_EXCEEDED:
                    raise _WindowFull from None
                raise
            return ack.seq

        try:
            return await until_answered(publish, timeout=self.timeout)
        except _WindowFull:
            return None

    async def take(self, checks: Sequence[WindowCheck]) -> None:
        """Count one call in every window, or in none: rate_limited (with Retry-After) when one is full,
        unavailable when JetStream does not answer."""
        if not checks:
            return
        outcomes = await asyncio.gather(*(self._count(check) for check in checks), return_exceptions=True)
        counted = [(check, seq) for check, seq in zip(checks, outcomes, strict=True) if isinstance(seq, int)]
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        full = [check for check, seq in zip(checks, outcomes, strict=True) if seq is None]
        if not failed and not full:
            return
        await self._uncount(counted)
        for outcome in failed:
            if isinstance(outcome, (*UNANSWERED, NotConnected)):
                continue
            if isinstance(outcome, nats.js.errors.APIError):
                raise ServiceFailure(ErrorCode.UNAVAILABLE, "NATS JetStream refused to count this call in the shared "
                                     f"rate limits ({outcome.description or type(outcome).__name__}), so it was "
                                     "refused") from None
            raise outcome
        if failed:
            raise unavailable("rate-limit state", self.timeout)
        check = full[0]
        raise rate_limited(f"{check.what} is reached ({check.window.capacity} calls per {check.window.period:g} s "
                           "across all gateways)", await self._retry_after(check), check.limit)

    async def _uncount(self, counted: Sequence[tuple[WindowCheck, int]]) -> None:
        for check, seq in counted:
            with contextlib.suppress(*UNANSWERED, NotConnected, nats.js.errors.APIError):
                await self._contexts.get().delete_msg(check.window.stream[0], seq)

    async def _retry_after(self, check: WindowCheck) -> float:
        """When the oldest call in the window ages out (the window's period when it cannot be read)."""
        with contextlib.suppress(*UNANSWERED, NotConnected, nats.js.errors.APIError):
            oldest = await self._contexts.get().get_msg(check.window.stream[0], seq=1, subject=check.subject,
                                                        next=True)
            if oldest.time is not None:
                return max(0.001, oldest.time.timestamp() + check.window.period - time.time())
        return check.window.period


BucketSource = Callable[[], Awaitable[KeyValueStore]]
CLEANUP_RETRY = 0.5
"""Seconds between two tries to free a slot the store did not answer for."""


class KvSlots:
    """Concurrency slots per token in a KV bucket, renewed while held, expiring with a dead gateway."""

    def __init__(self, bucket: BucketSource, *, owner: str, ttl: int, timeout: float) -> None:
        self._bucket = bucket
        self.owner = owner.encode()
        self.ttl = ttl
        self.timeout = timeout
        self._held: dict[str, int] = {}
        """key -> the revision this gateway wrote last."""
        self._renewer: asyncio.Task[None] | None = None
        self._cleanups: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def hold(self, token_id: str, cap: int) -> AsyncGenerator[None]:
        key = await self._acquire(token_id, cap)
        try:
            yield
        finally:
            await self._release(key)

    async def _acquire(self, token_id: str, cap: int) -> str:
        deadline = time.monotonic() + self.timeout
        order = random.sample(range(cap), cap)  # random start: concurrent callers rarely try the same slot
        token = name_token(token_id)
        while True:
            try:
                bucket = await self._bucket()
                for n in order:
                    key = f"{token}.{n}"
                    try:
                        self._held[key] = await bucket.create(key, self.owner, ttl=self.ttl)
                    except KeyExistsError:
                        continue
                    except KvUnavailableError:
                        self._free_later(key, only_if_ours=True)  # the create may have been applied
                        raise
                    self._start_renewing()
                    return key
            except KvUnavailableError:
                if time.monotonic() >= deadline:
                    raise unavailable("concurrency slots", self.timeout) from None
                await asyncio.sleep(0.1)
                continue
            raise rate_limited(f"this token already has {cap} calls running across all gateways (the limit)", 1.0,
                               "concurrency")

    async def _release(self, key: str) -> None:
        if self._held.pop(key, None) is None:
            return  # lost to its TTL meanwhile (renewals failed): it may be someone else's now
        try:
            await (await self._bucket()).delete(key)
        except KvError:
            self._free_later(key)

    # A slot this gateway could not free (NATS cut off, a leader election) would count against the token until its
    # TTL ran out, refusing the token's calls meanwhile: it is freed in the background once the store answers.
    # Within half the TTL of the failure the key is still this gateway's: its last renewal was at most a third of
    # the TTL earlier, so it has not expired and nobody else can hold it.

    def _free_later(self, key: str, *, only_if_ours: bool = False) -> None:
        task = asyncio.create_task(self._free_soon(key, only_if_ours))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _free_soon(self, key: str, only_if_ours: bool) -> None:
        """Delete the slot once the store answers. only_if_ours: a create whose answer was lost; it was applied if
        the key holds this gateway's mark and no call of this gateway holds it (a key another gateway took
        meanwhile holds that gateway's mark)."""
        deadline = time.monotonic() + self.ttl / 2
        while time.monotonic() < deadline:
            await asyncio.sleep(CLEANUP_RETRY)
            try:
                bucket = await self._bucket()
                if only_if_ours:
                    entry = await bucket.get(key)
                    if entry is None or entry.value != self.owner or key in self._held:
                        return
                await bucket.delete(key)
                return
            except KvError:
                continue
        log.warning("a concurrency slot could not be freed; it expires with its TTL", extra={"slot": key})

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self.ttl / 3)
            try:
                bucket = await self._bucket()
            except KvError:
                continue
            for key, revision in list(self._held.items()):
                try:
                    renewed = await bucket.update(key, self.owner, revision=revision, ttl=self.ttl)
                except KeyExistsError:
                    self._held.pop(key, None)
                    log.warning("a concurrency slot expired while its call ran", extra={"slot": key})
                    continue
                except KvError:
                    continue  # try again next round; the slot lives on for two more thirds of its TTL
                if key in self._held:
                    self._held[key] = renewed

    async def close(self) -> None:
        for task in [self._renewer, *self._cleanups]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class SharedCallLimiter:
    """The gateway's call limits (same settings as the local CallLimiter) counted on JetStream."""

    def __init__(self, per_token: RateSpec | None, per_tool: dict[str, RateSpec | None], max_concurrent: int,
                 *, rates: JetStreamRates, slots: KvSlots) -> None:
        self.per_token = per_token
        self.per_tool = per_tool
        self.max_concurrent = max_concurrent
        self.rates = rates
        self.slots = slots

    async def admit(self, token_id: str, tool: str) -> None:
        token = name_token(token_id)
        checks: list[WindowCheck] = []
        if self.per_token is not None:
            checks.append(WindowCheck(Window.of(self.per_token), token, "this token's call rate limit", "token"))
        tool_spec = self.per_tool.get(tool)
        if tool_spec is not None:
            checks.append(WindowCheck(Window.of(tool_spec), f"{token}.{name_token(tool)}",
                                      f"this token's rate limit for {tool}", "tool"))
        await self.rates.take(checks)

    def refusal(self, token_id: str, tool: str) -> ServiceFailure | None:
        """None: the shared windows live in JetStream, so only the call itself (admit) can tell; the routing-header
        check refuses nothing here (a call past the limit is refused once its body is read)."""
        return None

    def slot(self, token_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        if not self.max_concurrent:
            return contextlib.nullcontext()
        return self.slots.hold(token_id, self.max_concurrent)

    async def close(self) -> None:
        await self.slots.close()
