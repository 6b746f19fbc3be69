"""The fault matrix of the high-availability layout and the soak that injects it under load (bench/soak.py, and
its short CI run in tests/integration/ha/test_faults_under_load.py).

Each fault runs to its end (the process back in service, the node caught up, the simulator running again) and
leaves a window: from its start until `settle` seconds after its end, the time the layout needs to notice and
absorb it (liveness 0.5 s, pings ~6 s, a JetStream leader election ~5 s, the API timeout 3 s). A failed call
belongs to a fault when it overlaps the fault's window.

A failure is clear when it carries one of our error codes (a read: `retryable: true`), or, during a gateway's kill,
`transport`: no MCP answer could come, the HTTP exchange broke with the gateway. A legacy client's lost session
(`session_lost`) is clear too: it says to start a new session, which the client then does.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode

from tests.support.ha_load import Call, LoadPlan, MixedLoad
from tests.support.ha_stack import WORKER_KINDS, HaLayout
from tests.support.procs import frozen

CODES = frozenset(code.value for code in ErrorCode)


@dataclass
class Fault:
    name: str
    kind: str
    started: float
    ended: float = 0.0
    settle: float = 10.0

    @property
    def window(self) -> tuple[float, float]:
        return self.started, self.ended + self.settle

    def covers(self, call: Call) -> bool:
        start, end = self.window
        return call.overlaps(start, end)


Injector = Callable[[HaLayout, random.Random], Fault]


def _now() -> float:
    return time.monotonic()


def _restore_gateway(layout: HaLayout, fault: Fault, index: int) -> Fault:
    slot = layout.gateways[index]
    layout.start_gateway(slot)
    layout.wait_in_rotation(slot)
    fault.ended = _now()
    return fault


def kill_gateway(layout: HaLayout, rng: random.Random) -> Fault:
    index = rng.randrange(len(layout.gateways))
    fault = Fault(f"kill -9 gateway {index}, start it again 3 s later", "gateway-kill", _now())
    layout.kill_gateway(layout.gateways[index])
    time.sleep(3)  # the outage itself
    return _restore_gateway(layout, fault, index)


def restart_gateway(layout: HaLayout, rng: random.Random) -> Fault:
    index = rng.randrange(len(layout.gateways))
    fault = Fault(f"restart gateway {index} (SIGTERM: drain)", "gateway-restart", _now())
    layout.stop_gateway(layout.gateways[index])
    return _restore_gateway(layout, fault, index)


def _restore_worker(layout: HaLayout, fault: Fault, kind: str, index: int) -> Fault:
    layout.start_worker(kind, index)
    layout.wait_workers(kind, len(layout.workers[kind]))
    fault.ended = _now()
    return fault


def kill_worker(layout: HaLayout, rng: random.Random) -> Fault:
    kind = rng.choice(WORKER_KINDS)
    index = rng.randrange(len(layout.workers[kind]))
    fault = Fault(f"kill -9 {kind} {index}, start it again 2 s later", "worker-kill", _now())
    layout.kill_worker(kind, index)
    time.sleep(2)
    return _restore_worker(layout, fault, kind, index)


def restart_worker(layout: HaLayout, rng: random.Random) -> Fault:
    kind = rng.choice(WORKER_KINDS)
    index = rng.randrange(len(layout.workers[kind]))
    fault = Fault(f"restart {kind} {index} (SIGTERM: drain)", "worker-restart", _now())
    layout.stop_worker(kind, index)
    return _restore_worker(layout, fault, kind, index)


def kill_nats_node(layout: HaLayout, rng: random.Random) -> Fault:
    node = rng.choice(layout.cluster.nodes)
    fault = Fault(f"kill -9 NATS node {node.name}, start it again 5 s later", "nats-kill", _now())
    layout.cluster.kill(node)
    time.sleep(5)
    layout.cluster.restart(node)
    layout.cluster.wait_current(node, timeout=60)
    fault.ended = _now()
    return fault


def partition_nats_node(layout: HaLayout, rng: random.Random) -> Fault:
    node = rng.choice(layout.cluster.nodes)
    fault = Fault(f"cut NATS node {node.name} off for 15 s (netns link down)", "nats-partition", _now())
    with layout.cluster.partitioned(node):
        time.sleep(15)
    layout.cluster.wait_current(node, timeout=60)
    fault.ended = _now()
    return fault


def freeze_simulator(layout: HaLayout, rng: random.Random) -> Fault:
    seconds = rng.uniform(3, 8)
    fault = Fault(f"freeze the simulator (SIGSTOP) for {seconds:.0f} s", "sim-freeze", _now())
    with frozen([layout.sim.proc.pid]):
        time.sleep(seconds)
    fault.ended = _now()
    return fault


MATRIX: dict[str, Injector] = {
    "gateway-kill": kill_gateway,
    "gateway-restart": restart_gateway,
    "worker-kill": kill_worker,
    "worker-restart": restart_worker,
    "nats-kill": kill_nats_node,
    "nats-partition": partition_nats_node,
    "sim-freeze": freeze_simulator,
}


@dataclass
class SoakResult:
    seconds: float
    calls: list[Call]
    faults: list[Fault]
    reinitialised: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def failures(self) -> list[Call]:
        return [c for c in self.calls if not c.ok]

    def faults_of(self, call: Call) -> list[Fault]:
        return [f for f in self.faults if f.covers(call)]

    def clear(self, call: Call) -> bool:
        if call.code == "session_lost":
            return call.era == "legacy"
        if call.code == "transport":
            return any(f.kind == "gateway-kill" for f in self.faults_of(call))
        if call.code not in CODES:
            return False
        return call.mutation or call.retryable is True

    @property
    def outside(self) -> list[Call]:
        """Failures that no fault's window covers."""
        return [c for c in self.failures if not self.faults_of(c)]

    @property
    def unclear(self) -> list[Call]:
        return [c for c in self.failures if not self.clear(c)]

    @property
    def passed(self) -> bool:
        return not self.outside and not self.unclear

    def report(self) -> str:
        calls, failures = self.calls, self.failures
        ok = len(calls) - len(failures)
        lines = [
            f"soak: {self.seconds / 60:.1f} min, {len(self.faults)} faults, {len(calls)} calls "
            f"({sum(1 for c in calls if c.era == '2026')} 2026-era, {sum(1 for c in calls if c.era == 'legacy')} "
            f"legacy), load average {self.load_before[0]:.1f} at the start, {self.load_after[0]:.1f} at the end",
            f"success: {ok}/{len(calls)} = {100 * ok / max(len(calls), 1):.3f} %"
            f" (2026-era {_ratio([c for c in calls if c.era == '2026'])}, legacy "
            f"{_ratio([c for c in calls if c.era == 'legacy'])}); legacy sessions started again: {self.reinitialised}",
            "failures by code: " + (", ".join(f"{code} {n}" for code, n in Counter(
                f"{c.code}{'' if c.retryable is None else f' (retryable={c.retryable})'}" for c in failures
            ).most_common()) or "none"),
            "failures by fault: " + (", ".join(f"{kind} {n}" for kind, n in Counter(
                "+".join(sorted({f.kind for f in self.faults_of(c)})) or "none" for c in failures
            ).most_common()) or "none"),
        ]
        slowest = max(calls, key=lambda c: c.seconds) if calls else None
        if slowest is not None:
            lines.append(f"longest call: {slowest.seconds:.2f} s ({slowest.era} {slowest.tool}, {slowest.code})")
        start = min([c.started for c in calls] + [f.started for f in self.faults] or [0.0])
        lines.append("faults (window: start..end+settle, seconds from the start):")
        for fault in self.faults:
            first, last = fault.window
            hit = sum(1 for c in failures if fault.covers(c))
            lines.append(f"  {first - start:7.1f}..{last - start:7.1f}  {fault.name}: {hit} failed calls")
        lines.append("failed calls (in a fault's window? clear code?):")
        lines.extend(self._line(call, start) for call in failures)
        lines.append(f"verdict: {len(self.outside)} failures outside every fault window, {len(self.unclear)} without "
                     f"a clear code -> {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


    def _line(self, call: Call, start: float) -> str:
        retryable = "" if call.retryable is None else f" retryable={call.retryable}"
        return (f"  {call.started - start:7.1f} +{call.seconds:5.2f}s {call.era:6} {call.tool:15} {call.code}"
                f"{retryable} window={'yes' if self.faults_of(call) else 'NO'} "
                f"clear={'yes' if self.clear(call) else 'NO'}: {call.message[:140]}")


def _ratio(calls: Sequence[Call]) -> str:
    ok = sum(1 for c in calls if c.ok)
    return f"{100 * ok / max(len(calls), 1):.3f} %"


def _loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as handle:
        one, five, fifteen = handle.read().split()[:3]
    return float(one), float(five), float(fifteen)


async def soak(layout: HaLayout, plan: LoadPlan, *, seconds: float, fault_every: float, rng: random.Random,
               kinds: Sequence[str] = tuple(MATRIX), on_fault: Callable[[Fault], None] | None = None) -> SoakResult:
    """Mixed load for `seconds`, with one random fault of `kinds` every `fault_every` seconds (the first after
    half of it); every fault is over, and every process running again, before the result is returned."""
    load_before = _loadavg()
    faults: list[Fault] = []
    started = time.monotonic()
    async with MixedLoad(plan) as load:
        next_fault = started + fault_every / 2
        while time.monotonic() - started < seconds:
            if time.monotonic() >= next_fault and time.monotonic() - started < seconds - 10:
                fault = await asyncio.to_thread(MATRIX[rng.choice(list(kinds))], layout, rng)
                faults.append(fault)
                if on_fault is not None:
                    on_fault(fault)
                next_fault += fault_every
            await asyncio.sleep(0.2)
        calls = await load.stop()
    return SoakResult(seconds=time.monotonic() - started, calls=calls, faults=faults,
                      reinitialised=len(load.reinitialised), load_before=load_before, load_after=_loadavg())
