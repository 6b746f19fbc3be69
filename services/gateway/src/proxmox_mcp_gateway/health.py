"""Background probes of NATS, the workers and the Proxmox hosts; /health answers from their cached state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ServiceFailure
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind

from proxmox_mcp_gateway.bus import WorkerBus

log = logging.getLogger(__name__)

PROBE_CALLER = Caller(token_id="gateway-probe", scope=Scope.READ)
CHECK_NAMES = ("nats", "ssh-worker", "api-worker", "ssh", "api")


@dataclass
class CheckState:
    status: str = "unknown"
    """ok | fail | unknown"""
    latency_ms: float | None = None
    last_error: str | None = None
    last_success: float | None = None
    last_checked: float | None = None
    detail: dict[str, Any] = field(default_factory=dict[str, Any])
    _observed: float = field(default=float("-inf"), repr=False)

    def record(self, ok: bool, latency_ms: float | None, error: str | None = None, *,
               observed_at: float | None = None, **detail: Any) -> bool:
        """Take an observation made at observed_at (time.monotonic(); default: now); False, and nothing changes,
        when a newer one is already recorded (a slow probe round must not overwrite a check made after it began)."""
        observed = time.monotonic() if observed_at is None else observed_at
        if observed < self._observed:
            return False
        self._observed = observed
        now = time.time()
        self.status = "ok" if ok else "fail"
        self.latency_ms = None if latency_ms is None else round(latency_ms, 2)
        self.last_checked = now
        self.detail = detail
        if ok:
            self.last_success = now
            self.last_error = None
        else:
            self.last_error = error
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "latency_ms": self.latency_ms,
            "last_error": self.last_error,
            "last_success": self.last_success,
            "last_checked": self.last_checked,
            **self.detail,
        }


ProbeListener = Callable[[str, CheckState, str], None]
"""(check name, its state, cluster)."""
TARGET_CHECKS = ("ssh", "api")


class HealthMonitor:
    def __init__(
        self, bus: WorkerBus, *, cluster: str, interval: float, timeout: float,
        listener: ProbeListener | None = None, other_clusters: tuple[str, ...] = (),
    ) -> None:
        self.bus = bus
        self.cluster = cluster
        self.interval = interval
        self.timeout = timeout
        self._listener = listener
        self.checks: dict[str, CheckState] = {name: CheckState() for name in CHECK_NAMES}
        self.other_clusters: dict[str, dict[str, CheckState]] = {
            name: {check: CheckState() for check in TARGET_CHECKS} for name in other_clusters if name != cluster
        }
        """ssh and api of every configured cluster besides the default one (whose are in checks)."""
        self.warnings: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """Probe again now (e.g. right after NATS reconnects)."""
        self._wake.set()

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                healthy = await self.probe_once()
            except Exception as exc:  # a probe bug must never end the loop
                log.warning("probe round failed", extra={"error_type": type(exc).__name__})
                healthy = False
            failures = 0 if healthy else min(failures + 1, 4)
            # While something is down, probe more often (up to 4x) so recovery shows quickly.
            delay = self.interval / (2**failures) if failures else self.interval
            self._wake.clear()
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives just as poke() wakes it,
            # and stop() then waits forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.2)):
                    await self._wake.wait()

    async def probe_once(self) -> bool:
        self._set("nats", self.bus.connected, None, None if self.bus.connected else "not connected to NATS")
        if not self.bus.connected:
            for name in CHECK_NAMES[1:]:
                self._set(name, False, None, "NATS is down")
            for cluster in self.other_clusters:
                for name in TARGET_CHECKS:
                    self._set(name, False, None, "NATS is down", cluster=cluster)
            return False
        results = await asyncio.gather(
            self._probe_workers(WorkerKind.SSH, "ssh-worker"),
            self._probe_workers(WorkerKind.API, "api-worker"),
            *(probe for cluster in (self.cluster, *self.other_clusters) for probe in (
                self._probe_target(WorkerKind.SSH, SshOp.PROBE, "ssh", cluster),
                self._probe_target(WorkerKind.API, ApiOp.PROBE, "api", cluster),
            )),
        )
        return all(results)

    async def _probe_workers(self, kind: WorkerKind, name: str) -> bool:
        asked_at = time.monotonic()
        try:
            replies, first = await self.bus.ping_services(kind, timeout=min(self.timeout, 0.5))
        except ServiceFailure as exc:
            self._set(name, False, None, exc.info.message, observed_at=asked_at)
            return False
        ok = bool(replies)
        # Latency is the first instance's answer; the rest of the window only counts the instances. A count is
        # known only when the window closes: a readiness check made meanwhile (a load balancer asks every second)
        # must not make it look old. No answer at all stays an observation of when the round began.
        self._set(name, ok, None if first is None else first * 1000, None if ok else "no instance answered",
                  observed_at=time.monotonic() if ok else asked_at, instances=len(replies))
        return ok

    async def _probe_target(self, kind: WorkerKind, op: SshOp | ApiOp, name: str, cluster: str) -> bool:
        asked_at, started = time.monotonic(), time.perf_counter()
        try:
            result = await self.bus.call(kind, op, {}, cluster=cluster, caller=PROBE_CALLER,
                                         deadline=time.time() + self.timeout, idempotent=True)
        except ServiceFailure as exc:
            self._set(name, False, (time.perf_counter() - started) * 1000, exc.info.as_text(), observed_at=asked_at,
                      cluster=cluster)
            return False
        ok = bool(result.get("ok"))
        self._set(name, ok, result.get("latency_ms"), None if ok else str(result.get("detail") or "probe failed"),
                  observed_at=asked_at, cluster=cluster)
        return ok

    def _set(self, name: str, ok: bool, latency_ms: float | None, error: str | None, *,
             observed_at: float | None = None, cluster: str | None = None, **detail: Any) -> None:
        cluster = cluster or self.cluster
        state = self.other_clusters[cluster][name] if cluster != self.cluster else self.checks[name]
        if state.record(ok, latency_ms, error, observed_at=observed_at, **detail) and self._listener is not None:
            self._listener(name, state, cluster)

    def report(self) -> dict[str, Any]:
        checks = {name: state.as_dict() for name, state in self.checks.items()}
        states = [*self.checks.values(), *(s for per in self.other_clusters.values() for s in per.values())]
        status = "ok" if all(s.status == "ok" for s in states) else "degraded"
        if not self.bus.connected:
            status = "unavailable"
        body: dict[str, Any] = {"status": status, "checks": checks}
        if self.other_clusters:
            body["cluster"] = self.cluster
            body["clusters"] = {name: {check: state.as_dict() for check, state in per.items()}
                                for name, per in self.other_clusters.items()}
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return body

    async def refresh_workers(self) -> None:
        """Fresh worker presence for readiness probes: first answer wins, so this costs about a millisecond."""
        self._set("nats", self.bus.connected, None, None if self.bus.connected else "not connected to NATS")
        for kind, name in ((WorkerKind.SSH, "ssh-worker"), (WorkerKind.API, "api-worker")):
            if not self.bus.connected:
                self._set(name, False, None, "NATS is down")
                continue
            asked_at, started = time.monotonic(), time.perf_counter()
            alive = await self.bus.any_service(kind, timeout=min(self.timeout, 0.5))
            self._set(name, alive, (time.perf_counter() - started) * 1000, None if alive else "no instance answered",
                      observed_at=asked_at, **{k: v for k, v in self.checks[name].detail.items() if alive})

    def ready(self) -> bool:
        return all(self.checks[n].status == "ok" for n in ("nats", "ssh-worker", "api-worker"))
