"""Gateway state every replica must agree on, with real processes: a 3-node NATS cluster (JetStream R3), the
simulator, both workers and two gateways (PMCP_STATE=jetstream), plus gateways started and killed by tests.

Tokens created or revoked are seen by every gateway within a second; rate limits and concurrency caps count once
for all gateways; no audit record of a call that got a reply is lost when a gateway or a NATS node is killed;
JetStream state is intact after a node rejoins; without a quorum calls fail closed with a clear error."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_gateway.state_names import AUDIT_STREAM, TOKENS
from proxmox_mcp_runtime.config import dump_config_toml
from proxmox_mcp_runtime.kv import KvError

from tests.integration.gateway.conftest import FAST, sim_dict
from tests.support.mcp_client import SimClient
from tests.support.nats_cluster import NatsCluster, NatsNode, start_nats_cluster
from tests.support.procs import Proc, wait_until
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.shared_state import (
    Load,
    Outcome,
    Reply,
    audit_records,
    connected,
    jetstream_env,
    list_tools,
    new_token,
    rest_call,
    token_store,
    wait_accepted,
)
from tests.support.sim import SimInfo, sim_faults, sim_requests, start_sim

RATED_TOOL = "node_status"
RATE = 5
CAP = 2
SLOT_TTL = 3
GATEWAY_ENV = {
    **FAST,
    **jetstream_env(3),
    "PMCP_TOOL_RATE_LIMITS": f"{RATED_TOOL}={RATE}/m,execute_command=600/m,vm_action=600/m,proxmox_api=1200/m",
    "PMCP_MAX_CONCURRENT_PER_TOKEN": str(CAP),
    "PMCP_SLOT_TTL": str(SLOT_TTL),
    "PMCP_STATE_TIMEOUT": "20",  # longer than a stream leader election (~5 s): calls wait through it
}


@dataclass
class HaStack:
    workdir: Path
    cluster: NatsCluster
    sim: SimInfo
    a: GatewayProc
    b: GatewayProc
    extra: list[GatewayProc] = field(default_factory=list[GatewayProc])

    def gateway(self, **env: str) -> GatewayProc:
        started = start_gateway(self.cluster.url, self.workdir, env={**GATEWAY_ENV, **env})
        self.extra.append(started)
        wait_ready(started)
        return started

    def guest(self) -> dict[str, Any]:
        with SimClient(sim_dict(self.sim)) as reader:
            return reader.guests()[0]

    def heal(self) -> None:
        """Every node running and caught up again (after a test killed some)."""
        for node in self.cluster.nodes:
            if not node.running:
                self.cluster.restart(node)
        for node in self.cluster.nodes:
            self.cluster.wait_current(node, timeout=60)


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    workdir = tmp_path_factory.mktemp("ha-state")
    cluster = start_nats_cluster(workdir / "nats")
    procs: list[Proc] = []
    stack: HaStack | None = None
    try:
        sim = start_sim(workdir / "sim", task_duration=0.2)
        procs.append(sim.proc)
        config = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_dict(sim))))
        procs += [start_worker(kind, cluster.url, config, workdir, env=FAST) for kind in ("ssh-worker", "api-worker")]
        a = start_gateway(cluster.url, workdir, env=GATEWAY_ENV)
        procs.append(a.proc)
        b = start_gateway(cluster.url, workdir, env=GATEWAY_ENV)
        procs.append(b.proc)
        wait_ready(a)
        wait_ready(b)
        stack = HaStack(workdir=workdir, cluster=cluster, sim=sim, a=a, b=b)
        yield stack
    finally:
        for proc in [*(g.proc for g in (stack.extra if stack else [])), *reversed(procs)]:
            proc.stop()
        cluster.stop()


async def _token(ha: HaStack, name: str, urls: list[str] | None = None) -> str:
    async with connected(urls or ha.cluster.urls) as nc:
        return (await new_token(await token_store(nc, replicas=3), name)).secret


async def test_a_token_created_through_one_node_works_on_both_gateways_within_a_second(ha: HaStack) -> None:
    async with connected(ha.cluster.urls[0]) as nc:
        store = await token_store(nc, replicas=3)
        token = (await new_token(store, "seen-everywhere")).secret
        created = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waits = [pool.submit(wait_accepted, gw, token, accepted=True, within=1.0 - (time.monotonic() - created))
                 for gw in (ha.a, ha.b)]
        seconds = [w.result() for w in waits]
    print(f"token created -> accepted by A {seconds[0] * 1000:.0f} ms, by B {seconds[1] * 1000:.0f} ms")


async def test_a_token_revoked_is_refused_by_the_other_gateway_within_a_second(ha: HaStack) -> None:
    token = await _token(ha, "revoked-on-a")
    wait_accepted(ha.a, token, accepted=True, within=1.0)
    wait_accepted(ha.b, token, accepted=True, within=1.0)
    async with connected(ha.cluster.urls[1]) as nc:
        store = await token_store(nc, replicas=3)
        await store.revoke(token.split("_")[1])
        revoked = time.monotonic()
    refused = wait_accepted(ha.b, token, accepted=False, within=1.0 - (time.monotonic() - revoked))
    assert list_tools(ha.a, token).status_code == 401
    print(f"token revoked -> refused by B after {refused * 1000:.0f} ms")


async def test_a_per_token_tool_rate_limit_holds_across_both_gateways(ha: HaStack) -> None:
    token = await _token(ha, "rated")
    replies = [rest_call(gw.base_url, token, RATED_TOOL) for _ in range(RATE + 3) for gw in (ha.a, ha.b)]
    passed = [r for r in replies if r.code == "ok"]
    refused = [r for r in replies if r.code == "rate_limited"]
    assert len(passed) == RATE and len(refused) == len(replies) - RATE, [r.code for r in replies]
    for reply in refused:
        assert reply.status == 429 and 0 < int(reply.headers["retry-after"]) <= 60, reply.headers
        assert reply.body["error"]["details"]["limit"] == "tool"
        assert "across all gateways" in reply.message


async def test_a_concurrency_cap_holds_across_both_gateways_and_frees_up_when_calls_end(ha: HaStack) -> None:
    token = await _token(ha, "capped")
    guest = ha.guest()
    args = {"vmid": guest["vmid"], "node": guest["node"]}
    # Slow enough that all six overlap, quicker than PMCP_API_TIMEOUT (3 s in FAST).
    sim_faults(ha.sim, [{"path": "/status/current$", "latency_ms": 1800}])
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            calls = [pool.submit(rest_call, gw.base_url, token, "vm_status", args) for gw in (ha.a, ha.b) * 3]
            replies = [c.result() for c in calls]
    finally:
        sim_faults(ha.sim, [])
    codes = sorted(r.code for r in replies)
    assert codes == ["ok"] * CAP + ["rate_limited"] * (6 - CAP), codes
    assert all(r.body["error"]["details"]["limit"] == "concurrency" for r in replies if r.code != "ok")
    assert rest_call(ha.b.base_url, token, "vm_status", args).code == "ok"  # the slots were given back


async def test_the_slots_of_a_gateway_killed_during_its_calls_expire_and_other_gateways_get_them(
    ha: HaStack,
) -> None:
    victim = ha.gateway(PMCP_API_TIMEOUT="90")  # its calls hold their slots until it dies
    token = await _token(ha, "slots-of-the-dead")
    guest = ha.guest()
    args = {"vmid": guest["vmid"], "node": guest["node"]}
    sim_faults(ha.sim, [{"path": "/status/current$", "latency_ms": 60000}])
    pool = concurrent.futures.ThreadPoolExecutor(CAP)
    try:
        before = _status_reads(ha.sim)
        held = [pool.submit(rest_call, victim.base_url, token, "vm_status", args, timeout=90) for _ in range(CAP)]

        def victim_calls_pending() -> bool:
            ended = [f.result().body for f in held if f.done()]
            assert not ended, f"the victim's calls ended instead of holding their slots: {ended}"
            return True

        # Probe only once both calls reached Proxmox: a probe racing them would take a slot one of them needs.
        wait_until(lambda: victim_calls_pending() and _status_reads(ha.sim) >= before + CAP, timeout=20,
                   what="the victim's calls to reach Proxmox", interval=0.05)
        wait_until(lambda: victim_calls_pending()
                   and _limit(rest_call(ha.a.base_url, token, "list_vms")) == "concurrency",
                   timeout=20, what="every slot of the token to be taken by the victim's calls", interval=0.1)
        victim.proc.kill()
        killed = time.monotonic()
        sim_faults(ha.sim, [])
        while _limit(reply := rest_call(ha.a.base_url, token, "list_vms")) == "concurrency":
            assert time.monotonic() - killed < SLOT_TTL + 15, "a dead gateway's slots never expired"
            time.sleep(0.2)
        freed = time.monotonic() - killed
        assert reply.code == "ok", reply.body
    finally:
        sim_faults(ha.sim, [])
        pool.shutdown(wait=True, cancel_futures=True)
    print(f"slots of a gateway killed with kill -9 free again after {freed:.1f} s (PMCP_SLOT_TTL={SLOT_TTL})")


def _status_reads(sim: SimInfo) -> int:
    return sum(n for request, n in sim_requests(sim).items() if request.endswith("/status/current"))


def _limit(reply: Reply) -> str | None:
    return (reply.body.get("error") or {}).get("details", {}).get("limit")


async def _assert_every_reply_audited(ha: HaStack, outcomes: list[Outcome]) -> int:
    replied = [o for o in outcomes if o.reply is not None]
    async with connected(ha.cluster.urls) as nc:
        records = await audit_records(nc)
    final = {r["trace_id"] for r in records if r.get("event") == "tool_call" and "result" in r}
    missing = [o.trace for o in replied if o.trace not in final]
    assert not missing, f"{len(missing)} of {len(replied)} replied calls have no audit record: {missing[:5]}"
    return len(replied)


async def test_no_audit_record_is_lost_when_a_gateway_is_killed_under_load(ha: HaStack) -> None:
    victim = ha.gateway()
    tokens = [await _token(ha, f"load-gw-{n}") for n in range(4)]
    with Load([("a", ha.a.base_url), ("victim", victim.base_url)], tokens, base=0x1000_0000) as load:
        load.wait_for(40, within=60)
        victim.proc.kill()
        killed = load.count()
        load.wait_for(killed + 40, within=60)
    outcomes = load.outcomes
    lost = [o for o in outcomes if o.reply is None]
    assert all(o.target == "victim" for o in lost), lost
    assert all(o.reply.code == "ok" for o in outcomes if o.reply is not None and o.target == "a")
    replied = await _assert_every_reply_audited(ha, outcomes)
    print(f"gateway killed under load: {replied} calls got a reply, every one audited in the stream; "
          f"{len(lost)} in flight on the dead gateway got none")


async def _leader(ha: HaStack, stream: str) -> NatsNode:
    async with connected(ha.cluster.urls) as nc:
        info = await JetStreamContext(nc, timeout=5).stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, info
    return ha.cluster.node(info.cluster.leader)


async def test_no_audit_record_is_lost_and_calls_go_on_when_the_audit_streams_leader_node_is_killed(
    ha: HaStack,
) -> None:
    before_kill = await _token(ha, "made-before-the-kill")
    tokens = [await _token(ha, f"load-node-{n}") for n in range(4)]
    leader = await _leader(ha, AUDIT_STREAM)
    survivors = [n.url for n in ha.cluster.nodes if n is not leader]
    try:
        with Load([("a", ha.a.base_url), ("b", ha.b.base_url)], tokens, base=0x2000_0000) as load:
            load.wait_for(40, within=60)
            ha.cluster.kill(leader)
            killed_at = time.monotonic()
            load.wait_for(load.count() + 80, within=120)
        outcomes = load.outcomes
        failed = [o for o in outcomes if o.reply is None or o.reply.code != "ok"]
        assert all(o.reply is not None for o in outcomes), "a gateway stopped answering"
        for outcome in failed:  # only calls caught by the kill, each with a clear, retryable error
            assert outcome.reply is not None and outcome.reply.code == "unavailable", outcome.reply
            assert outcome.reply.body["error"]["retryable"] is True, outcome.reply.body
        after = [o for o in outcomes if o.started > killed_at + 1 and o.reply is not None and o.reply.code == "ok"]
        assert len(after) >= 40, f"only {len(after)} calls succeeded after the kill"
        replied = await _assert_every_reply_audited(ha, outcomes)
        # A token made while the node is down works on both gateways; the one made before still does.
        during = await _token(ha, "made-during-the-outage", urls=survivors)
        for gw in (ha.a, ha.b):
            wait_accepted(gw, during, accepted=True, within=5)
            wait_accepted(gw, before_kill, accepted=True, within=1)
        slowest = max(o.ended - o.started for o in outcomes)
    finally:
        ha.heal()
    audit = ha.cluster.wait_caught_up(leader, AUDIT_STREAM)
    tokens_state = ha.cluster.wait_caught_up(leader, f"KV_{TOKENS.name}")
    print(f"audit stream leader {leader.name} killed under load: {replied} replied calls all audited, "
          f"{len(failed)} failed (unavailable, retryable), slowest call {slowest:.1f} s; after rejoining it holds "
          f"{audit['messages']} audit records and {tokens_state['messages']} token entries like the others")


async def test_a_revocation_reaches_gateways_whose_token_watch_lived_on_a_killed_node_within_seconds(
    ha: HaStack,
) -> None:
    token = await _token(ha, "watch-survivor")
    for gw in (ha.a, ha.b):
        wait_accepted(gw, token, accepted=True, within=1)
    leader = await _leader(ha, f"KV_{TOKENS.name}")  # the watches' ordered consumers live with the stream leader
    survivors = [n.url for n in ha.cluster.nodes if n is not leader]
    try:
        ha.cluster.kill(leader)
        killed = time.monotonic()
        async with connected(survivors) as nc:
            while True:  # until the stream has a new leader
                try:
                    await (await token_store(nc, replicas=3)).revoke(token.split("_")[1])
                    break
                except KvError:
                    assert time.monotonic() - killed < 30, "no quorum for the revocation"
                    await asyncio.sleep(0.2)
        revoked = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waits = [pool.submit(wait_accepted, gw, token, accepted=False, within=20) for gw in (ha.a, ha.b)]
            seconds = [w.result() for w in waits]
    finally:
        ha.heal()
    print(f"node holding the token watches killed: revocation stored {revoked - killed:.1f} s after the kill, "
          f"refused by A {seconds[0]:.1f} s and B {seconds[1]:.1f} s after that")


async def test_a_gateway_without_a_jetstream_quorum_refuses_calls_with_a_clear_error(ha: HaStack) -> None:
    quick = ha.gateway(PMCP_STATE_TIMEOUT="2")
    token = await _token(ha, "no-quorum")
    wait_accepted(quick, token, accepted=True, within=1)
    assert rest_call(quick.base_url, token, "list_vms").code == "ok"
    try:
        for node in ha.cluster.nodes[:2]:
            ha.cluster.kill(node)
        started = time.monotonic()
        reply = rest_call(quick.base_url, token, "list_vms", timeout=60)
        took = time.monotonic() - started
        assert reply.status == 503 and reply.code == "unavailable", reply.body
        assert reply.body["error"]["retryable"] is True
        assert "NATS JetStream" in reply.message and "quorum" in reply.message, reply.message
        assert took < 30
    finally:
        ha.heal()
    deadline = time.monotonic() + 60
    while (again := rest_call(quick.base_url, token, "list_vms")).code != "ok":
        assert time.monotonic() < deadline, again.body
        time.sleep(0.2)
    print(f"without a quorum: refused after {took:.1f} s with: {reply.message}")
