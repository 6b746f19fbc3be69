"""The freeze switch's rule and what a process knows of the switch: fail closed when frozen or not confirmed
recently, read once more before refusing for staleness, never step back to an older state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from proxmox_mcp_contracts.control import FreezeState
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.control import ControlTiming, FreezeGuard, FreezeStatus, Observation, freeze_refusal
from proxmox_mcp_runtime.control.guard import ProblemCallback, StateCallback, Stoppable

from tests.support.clock import ManualClock

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
THAWED = FreezeState()
FROZEN = THAWED.with_change(frozen=True, by="pmcp-admin1", at=AT, reason="incident 12", via="rest")
TIMING = ControlTiming(interval=0.5, stale_after=2.0, timeout=0.2)


class FakeSource:
    """Answers reads with `current` (or raises `failure`), counts them, can hold them open."""

    def __init__(self, current: Observation) -> None:
        self.current = current
        self.failure: Exception | None = None
        self.reads = 0
        self.hold: asyncio.Event | None = None

    async def read(self) -> Observation:
        self.reads += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.failure is not None:
            raise self.failure
        return self.current

    async def watch(self, on_state: StateCallback, on_problem: ProblemCallback) -> Stoppable:
        raise NotImplementedError


def known(state: FreezeState) -> FreezeStatus:
    return FreezeStatus(state=state, known=True, revision=1, age=0.1)


@pytest.mark.parametrize("scope", list(Scope))
def test_nothing_is_refused_while_thawed(scope: Scope) -> None:
    assert freeze_refusal(known(THAWED), scope) is None


@pytest.mark.parametrize("scope", [Scope.OPERATE, Scope.EXEC, Scope.ADMIN])
def test_every_call_above_read_is_refused_while_frozen_naming_who_when_and_why(scope: Scope) -> None:
    failure = freeze_refusal(known(FROZEN), scope)
    assert failure is not None and failure.code is ErrorCode.PERMISSION_DENIED and not failure.info.retryable
    assert "the deployment is frozen: pmcp-admin1 froze it at 2026-12-01T09:30:00+00:00 (incident 12)" in \
        failure.info.message
    assert failure.info.details == {"frozen": True, "by": "pmcp-admin1", "since": AT.isoformat(),
                                    "reason": "incident 12"}


@pytest.mark.parametrize("status", [known(FROZEN), FreezeStatus(state=None, known=False, problem="no answer")])
def test_reads_pass_whether_frozen_or_unknown(status: FreezeStatus) -> None:
    assert freeze_refusal(status, Scope.READ) is None


def test_an_unknown_state_refuses_everything_above_read_as_unavailable_and_retryable() -> None:
    failure = freeze_refusal(FreezeStatus(state=THAWED, known=False, age=9.0, problem="JetStream did not answer"),
                             Scope.OPERATE)
    assert failure is not None and failure.code is ErrorCode.UNAVAILABLE and failure.info.retryable
    assert "the freeze switch cannot be read (JetStream did not answer)" in failure.info.message


@pytest.mark.parametrize(("interval", "stale_after", "timeout"), [(1.0, 1.0, 1.0), (0, 2.0, 1.0), (0.5, 2.0, 0)])
def test_timings_that_could_never_confirm_the_state_are_refused(interval: float, stale_after: float,
                                                               timeout: float) -> None:
    with pytest.raises(ValueError, match="PMCP_CONTROL_"):
        ControlTiming(interval=interval, stale_after=stale_after, timeout=timeout)


async def test_a_state_goes_unknown_when_not_confirmed_within_stale_after() -> None:
    clock = ManualClock()
    guard = FreezeGuard(FakeSource(Observation(THAWED, 1)), TIMING, clock=clock)
    assert not guard.status().known
    assert guard.observe(Observation(THAWED, 1))
    clock.now += 2.0
    assert guard.status().known
    clock.now += 0.01
    assert not guard.status().known and guard.status().frozen is None


async def test_a_check_reads_the_source_again_before_refusing_a_stale_state() -> None:
    clock = ManualClock()
    source = FakeSource(Observation(THAWED, 1))
    guard = FreezeGuard(source, TIMING, clock=clock)
    guard.observe(Observation(THAWED, 1))
    clock.now += 10
    await guard.check(Scope.OPERATE)
    assert source.reads == 1 and guard.status().known


async def test_a_source_that_cannot_answer_makes_every_call_above_read_fail_closed_naming_why() -> None:
    clock = ManualClock()
    source = FakeSource(Observation(THAWED, 1))
    source.failure = TimeoutError()
    guard = FreezeGuard(source, TIMING, clock=clock)
    with pytest.raises(ServiceFailure) as caught:
        await guard.check(Scope.EXEC)
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert "no answer within the control timeout" in caught.value.info.message
    await guard.check(Scope.READ)  # reads never wait for the switch
    assert source.reads == 1


async def test_a_read_that_never_answers_is_cut_off_by_the_control_timeout() -> None:
    source = FakeSource(Observation(THAWED, 1))
    source.hold = asyncio.Event()
    guard = FreezeGuard(source, TIMING)
    async with asyncio.timeout(2):
        with pytest.raises(ServiceFailure):
            await guard.check(Scope.OPERATE)


async def test_calls_waiting_at_once_share_one_read() -> None:
    source = FakeSource(Observation(FROZEN, 3))
    source.hold = asyncio.Event()
    guard = FreezeGuard(source, TIMING)
    checks = [asyncio.create_task(guard.check(Scope.OPERATE)) for _ in range(20)]
    finished, _ = await asyncio.wait(checks, timeout=0.1)
    assert not finished and source.reads == 1  # all 20 wait on the one read that is held
    source.hold.set()
    results = await asyncio.gather(*checks, return_exceptions=True)
    assert source.reads == 1
    assert all(isinstance(r, ServiceFailure) and r.code is ErrorCode.PERMISSION_DENIED for r in results)


async def test_an_older_state_never_replaces_a_newer_one() -> None:
    clock = ManualClock()
    guard = FreezeGuard(FakeSource(Observation(THAWED, 1)), TIMING, clock=clock)
    assert guard.observe(Observation(FROZEN, 5))
    clock.now += 0.1
    assert not guard.observe(Observation(THAWED, 4))  # a watch event late
    assert not guard.observe(Observation(THAWED, 4), issued_at=clock.now - 0.2)  # a read sent before it arrived
    assert guard.status().frozen is True and guard.status().revision == 5


async def test_a_read_sent_after_the_held_state_that_finds_an_older_revision_means_the_store_was_reset() -> None:
    clock = ManualClock()
    guard = FreezeGuard(FakeSource(Observation(THAWED, 1)), TIMING, clock=clock)
    guard.observe(Observation(THAWED, 9))
    clock.now += 1
    assert guard.observe(Observation(FROZEN, 1), issued_at=clock.now)
    assert guard.status().frozen is True and guard.status().revision == 1


async def test_a_relayed_state_is_as_old_as_its_senders_confirmation() -> None:
    clock = ManualClock()
    guard = FreezeGuard(FakeSource(Observation(THAWED, 1)), TIMING, clock=clock)
    guard.observe(Observation(THAWED, 2, age=1.5))
    clock.now += 0.6
    assert not guard.status().known


async def test_a_source_that_says_it_lost_the_state_makes_it_unknown_at_once() -> None:
    guard = FreezeGuard(FakeSource(Observation(THAWED, 1)), TIMING)
    guard.observe(Observation(THAWED, 1))
    guard.lost("the gateway does not know it: JetStream did not answer")
    status = guard.status()
    assert not status.known and status.problem and "JetStream" in status.problem


async def test_the_background_loop_confirms_the_state_and_reports_every_interval() -> None:
    source = FakeSource(Observation(FROZEN, 2))
    seen: list[FreezeStatus] = []

    async def report(status: FreezeStatus) -> None:
        seen.append(status)

    class Watchless(FakeSource):
        async def watch(self, on_state: StateCallback, on_problem: ProblemCallback) -> Stoppable:
            raise ConnectionError("no watch here")

    watchless = Watchless(source.current)
    guard = FreezeGuard(watchless, ControlTiming(interval=0.05, stale_after=1.0, timeout=0.5), on_status=report)
    guard.start()
    try:
        async with asyncio.timeout(5):
            while len(seen) < 3:
                await asyncio.sleep(0.01)
    finally:
        await guard.stop()
    assert all(s.known and s.frozen for s in seen) and watchless.reads >= 2


def test_the_health_view_names_the_state_and_the_last_change() -> None:
    assert known(FROZEN).report() == {"state": "frozen", "by": "pmcp-admin1", "at": AT.isoformat(),
                                      "reason": "incident 12", "via": "rest", "seq": 1, "confirmed_ago_s": 0.1}
    unknown = FreezeStatus(state=None, known=False, problem="no gateway answered").report()
    assert unknown == {"state": "unknown", "problem": "no gateway answered"}
