"""A check keeps the newest observation: a probe round that began earlier cannot overwrite a later answer, but a
worker count, known when the probe's window closes, is not older than a readiness check made during it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from proxmox_mcp_contracts.subjects import WorkerKind
from proxmox_mcp_gateway.bus import BusSettings, WorkerBus
from proxmox_mcp_gateway.health import CheckState, HealthMonitor

from tests.support.procs import wait_until_async


def test_an_observation_older_than_the_recorded_one_is_ignored() -> None:
    state = CheckState()
    round_began = time.monotonic()
    assert state.record(True, 0.8, observed_at=round_began + 0.2, instances=1)  # a readiness check, made later
    assert not state.record(False, 500.0, "no instance answered", observed_at=round_began, instances=0)
    assert state.as_dict()["status"] == "ok" and state.last_error is None and state.detail == {"instances": 1}


def test_newer_observations_replace_older_ones_and_failures_keep_the_last_success() -> None:
    state = CheckState()
    assert state.record(True, 1.0)
    success = state.last_success
    assert state.record(False, None, "connection refused")
    assert state.status == "fail" and state.last_error == "connection refused" and state.last_success == success
    assert "_observed" not in state.as_dict()


async def test_stop_ends_the_probe_loop_even_when_a_wake_up_and_the_stop_come_together() -> None:
    # A bus that never connected: each probe round ends at once and the loop waits for the next one.
    monitor = HealthMonitor(WorkerBus(BusSettings(nats_url="nats://127.0.0.1:1")), cluster="default",
                            interval=10.0, timeout=1.0)
    monitor.start()
    # A round without NATS never suspends: once it has recorded every check, the loop waits for the next round.
    await wait_until_async(lambda: all(s.status == "fail" for s in monitor.checks.values()), timeout=10,
                           what="the first probe round")
    started = time.monotonic()
    async with asyncio.timeout(30):  # no extra task: the stop's cancel lands in the same step as the wake-up
        monitor.poke()  # e.g. NATS just connected ...
        await monitor.stop()  # ... while the gateway shuts down
    assert time.monotonic() - started < 3, "the cancel was lost and stop() waited for a whole probe interval"


class _CountingBus:
    """Two worker instances answer the probe's window; readiness pings answer at once."""

    connected = True

    def __init__(self) -> None:
        self.window_open = asyncio.Event()
        self.close_window = asyncio.Event()

    async def ping_services(self, kind: object, timeout: float = 0.5) -> tuple[list[dict[str, str]], float]:
        self.window_open.set()
        await self.close_window.wait()
        return [{"id": "a"}, {"id": "b"}], 0.001

    async def any_service(self, kind: object, timeout: float = 0.5) -> bool:
        return True


async def test_a_worker_count_from_a_probe_window_survives_a_readiness_check_made_during_the_window() -> None:
    bus = _CountingBus()
    monitor = HealthMonitor(cast(Any, bus), cluster="default", interval=10.0, timeout=1.0)
    probe = asyncio.create_task(monitor._probe_workers(WorkerKind.SSH, "ssh-worker"))  # pyright: ignore[reportPrivateUsage]
    await bus.window_open.wait()
    await monitor.refresh_workers()  # e.g. Caddy's health check while the probe collects answers
    bus.close_window.set()
    assert await probe
    assert monitor.checks["ssh-worker"].detail["instances"] == 2
