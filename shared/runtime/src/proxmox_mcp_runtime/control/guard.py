"""The freeze switch's one rule (`freeze_refusal`), and what one process (a gateway or a worker) knows of the
switch (`FreezeGuard`): the latest state its source delivered and how long ago the source last confirmed it.

Fail closed: a state that has not been confirmed for `stale_after` seconds is unknown, and an unknown state
refuses everything above read, as a frozen one does. Before refusing for that, a check reads the source once
more (bounded by `timeout`), so a process whose background loop merely lagged does not refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from proxmox_mcp_contracts.control import FreezeState
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

log = logging.getLogger(__name__)

Clock = Callable[[], float]


LOCAL_STALE_AFTER = 2.0
SHARED_STALE_AFTER = 10.0
"""On JetStream a read of the switch waits for its bucket's stream leader, and electing a new one (its node died,
or a partition healed) takes ~5 s: a shorter window would refuse calls above read at every election."""


@dataclass(frozen=True)
class ControlTiming:
    interval: float = 0.5
    """Seconds between confirmations of the state (a read, when no broadcast or change confirmed it)."""
    stale_after: float = LOCAL_STALE_AFTER
    """A state not confirmed for this long is unknown: everything above read is refused."""
    timeout: float = 1.0
    """Seconds one read of the state may take."""

    @classmethod
    def configured(cls, state: str, *, interval: float, stale_after: float | None, timeout: float) -> ControlTiming:
        """From the PMCP_CONTROL_* settings of a gateway or worker; without PMCP_CONTROL_STALE_AFTER, the window
        that suits where the switch lives (PMCP_STATE)."""
        if stale_after is None:
            stale_after = SHARED_STALE_AFTER if state == "jetstream" else LOCAL_STALE_AFTER
        return cls(interval=interval, stale_after=stale_after, timeout=timeout)

    def __post_init__(self) -> None:
        if not (self.interval > 0 and self.timeout > 0):
            raise ValueError("PMCP_CONTROL_INTERVAL and PMCP_CONTROL_TIMEOUT must be positive")
        if self.stale_after <= self.interval:
            raise ValueError(f"PMCP_CONTROL_STALE_AFTER ({self.stale_after} s) must be longer than "
                             f"PMCP_CONTROL_INTERVAL ({self.interval} s), or the freeze switch would never count as "
                             "known")


@dataclass(frozen=True)
class Observation:
    state: FreezeState
    revision: int
    """The state's revision in its store (0: never written): a newer observation has a higher one."""
    age: float = 0.0
    """Seconds before its arrival that the state was confirmed at the store (a relayed state's age)."""


@dataclass(frozen=True)
class FreezeStatus:
    state: FreezeState | None
    """The latest state delivered (None: none yet)."""
    known: bool
    """Confirmed within stale_after: the process may act on it."""
    revision: int = 0
    age: float | None = None
    """Seconds since the state was last confirmed (None: never)."""
    problem: str | None = None
    """Why the last read failed, when it did."""

    @property
    def frozen(self) -> bool | None:
        """True/False when known; None when not."""
        return None if not self.known or self.state is None else self.state.frozen

    def report(self) -> dict[str, Any]:
        """The /health view: frozen, thawed or unknown, and who changed it last, when and why."""
        state = "unknown" if self.frozen is None else ("frozen" if self.frozen else "thawed")
        body: dict[str, Any] = {"state": state}
        latest = self.state.latest if self.state is not None else None
        if latest is not None:
            body.update({"by": latest.by, "at": latest.at.isoformat(), "reason": latest.reason, "via": latest.via,
                         "seq": latest.seq})
        if self.age is not None:
            body["confirmed_ago_s"] = round(self.age, 3)
        if not self.known and self.problem:
            body["problem"] = self.problem
        return body


def above_read(scope: Scope) -> bool:
    return scope.rank > Scope.READ.rank


def freeze_refusal(status: FreezeStatus, required: Scope) -> ServiceFailure | None:
    """The one rule of the freeze switch, for the gateway and both workers: a call that needs more than read
    is refused while the deployment is frozen, and while this process cannot tell whether it is."""
    if not above_read(required):
        return None
    if not status.known or status.state is None:
        why = status.problem or "it has not been confirmed recently"
        return ServiceFailure(
            ErrorCode.UNAVAILABLE,
            f"the freeze switch cannot be read ({why}), so calls that change something are refused until it can; "
            "reads still work",
            retryable=True, details={"frozen": None},
        )
    latest = status.state.latest
    if latest is None or not latest.frozen:
        return None
    since = latest.at.isoformat(timespec="seconds")
    return ServiceFailure(
        ErrorCode.PERMISSION_DENIED,
        f"the deployment is frozen: {latest.by} froze it at {since} ({latest.reason}); only reads work until an "
        "admin thaws it",
        details={"frozen": True, "by": latest.by, "since": latest.at.isoformat(), "reason": latest.reason},
    )


class Stoppable(Protocol):
    async def stop(self) -> None: ...


StateCallback = Callable[[Observation], None]
ProblemCallback = Callable[[str], None]


class FreezeSource(Protocol):
    """Where a process learns the state: the control bucket, or (workers in local mode) the gateway's relay."""

    async def read(self) -> Observation:
        """The current state, confirmed now; raises when the source cannot answer."""
        ...

    async def watch(self, on_state: StateCallback, on_problem: ProblemCallback) -> Stoppable:
        """Deliver each change (and, for a relay, each broadcast) until stopped; on_problem when the source says
        it does not know the state."""
        ...


StatusHook = Callable[[FreezeStatus], Awaitable[None]]


def describe_failure(exc: BaseException) -> str:
    """A failed read in words for /health and refusals (no hosts or secrets: type and our own message)."""
    if isinstance(exc, TimeoutError):
        return "no answer within the control timeout"
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class FreezeGuard:
    """The freeze state as this process knows it, kept current by a watch and confirmed by reads.

    on_status: called every interval and right after a change (the gateway's relay publishes from it)."""

    def __init__(self, source: FreezeSource, timing: ControlTiming | None = None, *,
                 on_status: StatusHook | None = None, clock: Clock = time.monotonic, name: str = "freeze") -> None:
        self.timing = timing or ControlTiming()
        self._source = source
        self._on_status = on_status
        self._clock = clock
        self._name = name
        self._state: FreezeState | None = None
        self._revision = 0
        self._accepted_at = -math.inf
        self._confirmed_at = -math.inf
        self._problem: str | None = None
        self._reading: asyncio.Future[None] | None = None
        self._watch: Stoppable | None = None
        self._loop: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- what the process knows -----------------------------------------------------------------------------

    def status(self) -> FreezeStatus:
        now = self._clock()
        age = None if self._confirmed_at == -math.inf else max(0.0, now - self._confirmed_at)
        known = self._state is not None and age is not None and age <= self.timing.stale_after
        return FreezeStatus(state=self._state, known=known, revision=self._revision, age=age,
                            problem=self._problem)

    async def current(self) -> FreezeStatus:
        """The status, read once more from the source first when it is not known."""
        status = self.status()
        if status.known:
            return status
        await self.refresh()
        return self.status()

    async def check(self, required: Scope) -> None:
        """Raise the freeze switch's refusal for a call that needs `required`, if there is one."""
        status = await self.current() if above_read(required) else self.status()
        failure = freeze_refusal(status, required)
        if failure is not None:
            raise failure

    # --- observations ----------------------------------------------------------------------------------------

    def observe(self, seen: Observation, *, issued_at: float | None = None) -> bool:
        """Take a state the source delivered; False when it is older than the one held. issued_at: when the read
        that returned it was sent. A read sent after the held state arrived that returns an older revision means
        the store was reset (revisions start again), so it is taken."""
        older = seen.revision < self._revision
        if self._state is not None and older and (issued_at is None or issued_at <= self._accepted_at):
            return False
        now = self._clock()
        changed = self._state != seen.state or self._revision != seen.revision
        self._state, self._revision, self._accepted_at = seen.state, seen.revision, now
        self._confirmed_at = now - seen.age if issued_at is None else min(issued_at, now)
        self._problem = None
        if changed:
            log.info("freeze switch state", extra={"guard": self._name, "frozen": seen.state.frozen,
                                                   "revision": seen.revision, "seq": seen.state.seq})
            self._wake.set()
        return True

    def lost(self, problem: str) -> None:
        """The source says it cannot tell the state now: whatever this process held is unknown from here on."""
        if self._confirmed_at != -math.inf or self._problem != problem:
            log.warning("freeze switch state unknown", extra={"guard": self._name, "problem": problem})
        self._confirmed_at = -math.inf
        self._problem = problem
        self._wake.set()

    async def refresh(self) -> None:
        """Read the source once (one read at a time, shared by every caller waiting for it)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read_once())
        await asyncio.shield(self._reading)

    async def _read_once(self) -> None:
        issued = self._clock()
        try:
            async with asyncio.timeout(self.timing.timeout):
                seen = await self._source.read()
        except Exception as exc:
            problem = describe_failure(exc)
            if problem != self._problem:
                log.warning("freeze switch not read", extra={"guard": self._name, "problem": problem})
            self._problem = problem
            return
        self.observe(seen, issued_at=issued)

    # --- background ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._watch is not None:
            with contextlib.suppress(Exception):
                await self._watch.stop()
            self._watch = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._ensure_watch()
                age = self.status().age
                if age is None or age >= self.timing.interval:
                    await self.refresh()
                if self._on_status is not None:
                    await self._on_status(self.status())
            except Exception as exc:  # a bug here must not end the loop: the state would go stale (fail closed)
                log.warning("freeze switch loop failed", extra={"guard": self._name,
                                                                "error_type": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.interval):
                    await self._wake.wait()

    async def _ensure_watch(self) -> None:
        if self._watch is not None:
            return
        try:
            async with asyncio.timeout(self.timing.timeout * 2):
                self._watch = await self._source.watch(self._on_watched, self.lost)
        except Exception as exc:
            self._problem = self._problem or describe_failure(exc)

    def _on_watched(self, seen: Observation) -> None:
        self.observe(seen)
