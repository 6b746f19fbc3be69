"""Faults under load in the high-availability layout, with real processes: three NATS nodes (each in its own
network namespace), two gateways behind Caddy (the repository's Caddyfile), two of each worker, the simulator.
Official MCP clients of both eras call through Caddy all the time: 2026-era clients read and change (vm_action
with wait, execute_command, each with an idempotency key), a legacy-era client reads in its session.

What must hold: a killed or cut-off NATS node fails at most the calls in flight through it (reads with a
retryable error, changes with an error that says whether anything happened), the node rejoins with the same
JetStream state, nothing hangs; a gateway killed under Caddy fails only the calls in flight on it; a rolling
restart of every gateway and worker (SIGTERM: drain) fails no 2026-era call, and legacy clients start a new
session and go on. Last, bench/soak.py's two-minute run: a random fault every minute, every failure in a
fault's window with a clear code. Token revocation and rate limits across gateways are in
test_shared_state_cluster.py.

The tests share one started layout and run in this order (each leaves every process running)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import httpx2
import pytest
from proxmox_mcp_gateway.state_names import AUDIT_STREAM, TOKENS

from tests.support.ha_faults import soak
from tests.support.ha_load import Call, LoadPlan, MixedLoad
from tests.support.ha_stack import WORKER_KINDS, HaLayout, start_ha_layout
from tests.support.mcp_client import http_client
from tests.support.netns import require_netns
from tests.support.shared_state import wait_accepted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GATEWAY_NAME = "proxmox-mcp-gateway-"
CLIENTS = 4
"""Three 2026-era clients (reads and changes), one legacy-era client (reads)."""
LONGEST_CALL = 30.0
"""No call may take longer (liveness 0.5 s, PMCP_STATE_TIMEOUT 20 s, a task wait of a second)."""


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaLayout]:
    require_netns()
    stack = start_ha_layout(tmp_path_factory.mktemp("ha-faults"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def plan(layout: HaLayout) -> LoadPlan:
    tokens = asyncio.run(layout.accepted_tokens("load", CLIENTS))
    return LoadPlan(url=layout.mcp_url, verify=layout.front.ssl_context(), tokens=tokens, guests=layout.guests(),
                    modern=CLIENTS - 1, legacy=1)


async def _off_loop(function: Callable[..., object], *args: object) -> None:
    """Blocking control (start/stop processes, poll HTTP) without stalling the clients' event loop."""
    await asyncio.to_thread(function, *args)


def _failed(calls: Sequence[Call]) -> list[Call]:
    return [c for c in calls if not c.ok and c.code != "session_lost"]


def _describe(calls: Sequence[Call], since: float) -> str:
    return "; ".join(f"{c.client} {c.tool} {c.started - since:+.2f}..{c.ended - since:+.2f}s {c.code} "
                     f"retryable={c.retryable}: {c.message[:160]}" for c in calls)


def _assert_clear(failures: Sequence[Call], since: float) -> None:
    """Every failure is `unavailable`; a read says it may be retried, a change says whether it happened."""
    for call in failures:
        assert call.code == "unavailable", _describe([call], since)
        if not call.mutation:
            assert call.retryable is True, _describe([call], since)
        else:
            assert call.retryable is True or "is unknown" in call.message or "which was started" in call.message, (
                _describe([call], since))


def _assert_nothing_hung(calls: Sequence[Call]) -> None:
    slowest = max(calls, key=lambda c: c.seconds)
    assert slowest.seconds < LONGEST_CALL, f"{slowest.tool} took {slowest.seconds:.1f} s"


@pytest.fixture
async def load(plan: LoadPlan) -> AsyncIterator[MixedLoad]:
    async with MixedLoad(plan) as running:
        await running.wait_for(20, within=60)
        yield running


async def _legacy_session_spread(layout: HaLayout, plan: LoadPlan) -> list[float]:
    """How a new legacy session's 10 calls spread over the gateways (with no other traffic)."""
    before = [layout.calls_served(slot) for slot in layout.gateways]
    async with http_client(layout.mcp_url, plan.tokens[-1], mode="legacy", verify=plan.verify) as client:
        for _ in range(10):
            assert not (await client.call_tool("list_vms", {})).is_error
    return [layout.calls_served(slot) - b for slot, b in zip(layout.gateways, before, strict=True)]


async def test_caddy_spreads_2026_calls_over_both_gateways_and_keeps_a_legacy_session_on_its_gateway(
    layout: HaLayout, plan: LoadPlan,
) -> None:
    def served() -> list[float]:
        return [layout.calls_served(slot) for slot in layout.gateways]

    before = served()
    async with http_client(layout.mcp_url, plan.tokens[0], mode="auto", verify=plan.verify) as client:
        for _ in range(20):
            assert not (await client.call_tool("list_vms", {})).is_error
    spread = [after - b for after, b in zip(served(), before, strict=True)]
    assert sum(spread) == 20 and min(spread) > 0, spread
    kept = await _legacy_session_spread(layout, plan)
    assert sorted(kept) == [0, 10], kept
    # The legacy route hands out the cookie that keeps a client on its gateway.
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "cookie-check", "version": "0"}}}
    async with httpx2.AsyncClient(verify=plan.verify, timeout=30) as raw:
        response = await raw.post(layout.mcp_url, json=initialize, headers={
            "Authorization": f"Bearer {plan.tokens[-1]}", "Accept": "application/json, text/event-stream"})
    assert response.status_code == 200 and "pmcp_gateway" in response.cookies, response.headers
    print(f"20 calls of one 2026-era client went {spread[0]:.0f}/{spread[1]:.0f} to the two gateways; "
          f"10 calls of a legacy session {kept[0]:.0f}/{kept[1]:.0f}")


async def test_a_nats_node_killed_under_load_fails_at_most_the_calls_in_flight_and_rejoins_with_the_same_state(
    layout: HaLayout, load: MixedLoad,
) -> None:
    cluster = layout.cluster
    victim = cluster.connection_holder(GATEWAY_NAME)  # a gateway's own node: its calls are cut mid-way
    assert victim is not None
    killed = time.monotonic()
    cluster.kill(victim)
    await load.wait_for(40, since=killed + 1, within=90)
    await _off_loop(cluster.restart, victim)
    await _off_loop(cluster.wait_current, victim, 60)
    await load.wait_for(10, since=time.monotonic(), within=60)
    calls = await load.stop()
    failures = _failed(calls)
    in_flight = [c for c in failures if c.started <= killed + 1 and c.ended >= killed]
    assert failures == in_flight, f"failures besides the calls in flight: {_describe(failures, killed)}"
    _assert_clear(failures, killed)
    _assert_nothing_hung(calls)
    audit = await asyncio.to_thread(cluster.wait_caught_up, victim, AUDIT_STREAM)
    tokens = await asyncio.to_thread(cluster.wait_caught_up, victim, f"KV_{TOKENS.name}")
    for slot in layout.gateways:  # tokens made before the kill still work on both gateways
        assert slot.gateway is not None
        wait_accepted(slot.gateway, load.plan.tokens[0], accepted=True, within=1)
    print(f"{victim.name} killed under load: {len(calls)} calls, {len(failures)} failed (in flight: "
          f"{_describe(failures, killed) or 'none'}); slowest {max(c.seconds for c in calls):.1f} s; rejoined "
          f"with {audit['messages']} audit records and {tokens['messages']} token entries like the others")


async def test_a_nats_node_cut_off_for_20_s_under_load_fails_at_most_the_calls_through_it_and_nothing_hangs(
    layout: HaLayout, load: MixedLoad,
) -> None:
    cluster = layout.cluster
    victim = cluster.connection_holder(GATEWAY_NAME)
    assert victim is not None
    with cluster.partitioned(victim):
        cut = time.monotonic()
        # A cut-off node answers nothing (no reset): its clients notice by missed pings (~6 s), the other nodes
        # drop its routes, and the subscriptions behind them, as fast. Until then calls routed through it fail.
        noticed = cut + 10
        await load.wait_for(30, since=noticed, within=60)
        while time.monotonic() - cut < 20:
            await asyncio.sleep(0.2)
    healed = time.monotonic()
    await _off_loop(cluster.wait_current, victim, 60)
    await load.wait_for(10, since=time.monotonic(), within=60)
    calls = await load.stop()
    failures = _failed(calls)
    early = [c for c in failures if c.started <= noticed and c.ended >= cut]
    assert failures == early, f"failures outside the partition's first seconds: {_describe(failures, cut)}"
    _assert_clear(failures, cut)
    _assert_nothing_hung(calls)
    caught = await asyncio.to_thread(cluster.wait_caught_up, victim, AUDIT_STREAM)
    print(f"{victim.name} cut off 20 s under load: {len(calls)} calls, {len(failures)} failed "
          f"({_describe(failures, cut) or 'none'}); slowest {max(c.seconds for c in calls):.1f} s; healed and "
          f"caught up ({caught['messages']} audit records) {time.monotonic() - healed:.1f} s after")


async def test_a_gateway_killed_behind_caddy_under_load_fails_only_the_calls_in_flight_on_it(
    layout: HaLayout, plan: LoadPlan,
) -> None:
    # The gateway a new legacy session lands on (all clients here share one address, hence one gateway): the
    # legacy client of the load started there too, and must lose its session.
    spread = await _legacy_session_spread(layout, plan)
    slot = layout.gateways[spread.index(max(spread))]
    async with MixedLoad(plan) as load:
        await load.wait_for(20, within=60)
        killed = time.monotonic()
        layout.kill_gateway(slot)
        await load.wait_for(40, since=killed, within=60)
        after = time.monotonic()
        await _off_loop(layout.start_gateway, slot)
        await _off_loop(layout.wait_in_rotation, slot)
        await load.wait_for(10, since=time.monotonic(), within=60)
        calls = await load.stop()
    failures = _failed(calls)
    in_flight = [c for c in failures if c.started <= killed and c.ended >= killed]
    assert failures == in_flight, f"failures besides the calls in flight: {_describe(failures, killed)}"
    assert len(failures) <= CLIENTS
    for call in failures:  # the HTTP exchange broke under the call: no MCP answer came
        assert call.code == "transport", _describe([call], killed)
    lost = [c for c in calls if c.code == "session_lost"]
    assert lost and all(c.era == "legacy" and c.ended >= killed for c in lost), _describe(lost, killed)
    assert all(any(c.ok and c.started > r for c in calls if c.era == "legacy") for r in load.reinitialised)
    _assert_nothing_hung(calls)
    print(f"gateway killed under load: {len(calls)} calls, failed only {len(failures)} in flight on it "
          f"({_describe(failures, killed) or 'none'}); legacy sessions lost {len(lost)}, started again "
          f"{len(load.reinitialised)}; {load.count(ok=True, since=killed)} calls succeeded in the "
          f"{after - killed:.1f} s on one gateway and after")


async def test_a_rolling_restart_of_every_gateway_and_worker_fails_no_2026_call_and_legacy_clients_go_on(
    layout: HaLayout, load: MixedLoad,
) -> None:
    started = time.monotonic()
    exits: list[int | None] = []
    for slot in layout.gateways:
        exits.append(await asyncio.to_thread(layout.stop_gateway, slot))
        await _off_loop(layout.start_gateway, slot)
        await _off_loop(layout.wait_in_rotation, slot)
        await load.wait_for(10, since=time.monotonic(), within=60)
    for kind in WORKER_KINDS:
        for index in range(len(layout.workers[kind])):
            exits.append(await asyncio.to_thread(layout.stop_worker, kind, index))
            await _off_loop(layout.start_worker, kind, index)
            await _off_loop(layout.wait_workers, kind, len(layout.workers[kind]))
            await load.wait_for(5, since=time.monotonic(), within=60)
    took = time.monotonic() - started
    calls = await load.stop()
    assert exits == [0] * len(exits), f"a process did not stop cleanly on SIGTERM: {exits}"
    modern = [c for c in calls if c.era == "2026"]
    assert not _failed(modern), _describe(_failed(modern), started)
    legacy = [c for c in calls if c.era == "legacy"]
    assert not _failed(legacy), _describe(_failed(legacy), started)
    lost = [c for c in legacy if c.code == "session_lost"]
    assert len(load.reinitialised) >= len(lost)
    assert legacy[-1].ok and modern[-1].ok
    _assert_nothing_hung(calls)
    print(f"rolling restart of {len(layout.gateways)} gateways and {sum(map(len, layout.workers.values()))} "
          f"workers in {took:.0f} s under load: {len(modern)} 2026-era calls, none failed; the legacy client lost "
          f"its session {len(lost)} times and started a new one each time ({len(legacy)} calls)")



@pytest.mark.timeout(420)
async def test_a_two_minute_soak_with_a_random_fault_every_minute_fails_only_in_fault_windows_with_clear_codes(
    layout: HaLayout, plan: LoadPlan,
) -> None:
    """bench/soak.py's short run: the pass rule is where failures fall and what they say, not their share."""
    seed = random.randrange(1 << 30)
    result = await soak(layout, plan, seconds=120, fault_every=60, rng=random.Random(seed))
    print(f"seed {seed}\n{result.report()}")
    assert len(result.faults) == 2 and result.calls
    assert not result.outside, [(c.tool, c.code, c.message[:120]) for c in result.outside]
    assert not result.unclear, [(c.tool, c.code, c.retryable, c.message[:120]) for c in result.unclear]
