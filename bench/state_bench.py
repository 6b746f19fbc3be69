"""What shared gateway state costs per call: local (one gateway) vs JetStream on one server (R1) and on a 3-node
cluster (R3), each part a call passes measured on its own, in this process, the way the gateway runs it.

Parts, per call:
  - auth: checking a stored token (file store vs the JetStream snapshot; both in memory),
  - rate: counting the call in its rate limits (token + tool: in-memory token buckets vs two JetStream publishes
    to the rate-window streams, sent together),
  - slot: taking and giving back a concurrency slot (in memory vs a KV create with TTL and a delete),
  - audit: one record (fsync'd file vs fsync'd file + acknowledged publish to PMCP_AUDIT, done together); reads
    write one record per call, changes two.
Prints p50 and mean in microseconds for each part and the sum for a read, for sequential calls; then the same
for 16 calls at once (mean wall time per call).

Usage: uv run python bench/state_bench.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nats  # noqa: E402
from nats.aio.client import Client as NatsClient  # noqa: E402
from proxmox_mcp_contracts.envelope import Scope  # noqa: E402
from proxmox_mcp_gateway.audit import AuditLog  # noqa: E402
from proxmox_mcp_gateway.audit_stream import JetStreamAudit  # noqa: E402
from proxmox_mcp_gateway.auth import TokenAuthenticator  # noqa: E402
from proxmox_mcp_gateway.jetstream_calls import JetStreamContexts  # noqa: E402
from proxmox_mcp_gateway.limits import CallLimiter, Limiter, RateSpec  # noqa: E402
from proxmox_mcp_gateway.shared_limits import JetStreamRates, KvSlots, SharedCallLimiter  # noqa: E402
from proxmox_mcp_gateway.state_names import SLOTS, TOKENS  # noqa: E402
from proxmox_mcp_gateway.token_kv import KvTokenStore, TokenSnapshot  # noqa: E402
from proxmox_mcp_gateway.tokens import TokenGrant, TokenStore  # noqa: E402
from proxmox_mcp_runtime.kv import KeyValueStore  # noqa: E402
from proxmox_mcp_runtime.kv.jetstream import JetStreamState  # noqa: E402

from tests.support.nats import start_nats  # noqa: E402
from tests.support.nats_cluster import start_nats_cluster  # noqa: E402

RECORD = {"ts": "2026-12-06T00:00:00.000Z", "event": "tool_call", "request_id": "0" * 32, "token_id": "0123456789ab",
          "client": "127.0.0.1", "transport": "http", "tool": "list_vms", "arguments": {}, "result": "ok",
          "decision": {"allowed": True, "reason": "scope read includes read", "required_scope": "read"},
          "duration_ms": 2.5, "trace_id": "0" * 32}
PARTS = ("auth", "rate", "slot", "audit")


class Setup:
    def __init__(self, name: str, auth: TokenAuthenticator, token: str, limiter: Limiter, audit: AuditLog) -> None:
        self.name, self.auth, self.token, self.limiter, self.audit = name, auth, token, limiter, audit

    async def part(self, part: str, n: int) -> None:
        if part == "auth":
            assert self.auth.check(self.token).caller is not None
        elif part == "rate":
            await self.limiter.admit(f"tok{n % 50}", "list_vms")
        elif part == "slot":
            async with self.limiter.slot(f"tok{n % 50}"):
                pass
        else:
            await self.audit.append(RECORD)


def limits() -> tuple[RateSpec, dict[str, RateSpec | None]]:
    return RateSpec(capacity=1_000_000, period=60), {"list_vms": RateSpec(capacity=1_000_000, period=60)}


def local_setup(workdir: Path) -> Setup:
    new = TokenStore(workdir / "tokens.json").create(name="bench", scope=Scope.READ)
    per_token, per_tool = limits()
    return Setup("local", TokenAuthenticator([], store_path=workdir / "tokens.json"), new.secret,
                 CallLimiter(per_token, per_tool, max_concurrent=32), AuditLog(workdir / "local-audit.jsonl"))


async def jetstream_setup(name: str, nc: NatsClient, replicas: int, workdir: Path) -> Setup:
    state = JetStreamState(nc, replicas=replicas)
    store = KvTokenStore(await state.bucket(TOKENS))
    new = await store.create(TokenGrant.checked(name=f"bench-{time.time_ns()}", scope=Scope.READ))
    snapshot = TokenSnapshot()
    await (await state.bucket(TOKENS)).watch(snapshot.apply)
    snapshot.loaded = True
    slots_bucket = await state.bucket(SLOTS)

    async def slots() -> KeyValueStore:
        return slots_bucket

    per_token, per_tool = limits()
    limiter = SharedCallLimiter(per_token, per_tool, 32,
                                rates=JetStreamRates(JetStreamContexts(lambda: nc, 2.0), replicas=replicas,
                                                     timeout=10),
                                slots=KvSlots(slots, owner="bench", ttl=30, timeout=10))
    audit = AuditLog(workdir / f"{name}-audit.jsonl",
                     replica=JetStreamAudit(lambda: nc, gateway_id="bench", replicas=replicas))
    return Setup(name, TokenAuthenticator([], source=snapshot), new.secret, limiter, audit)


async def sequential(setup: Setup, part: str, calls: int) -> list[float]:
    for n in range(20):  # warm up: streams created, connections hot
        await setup.part(part, n)
    seconds: list[float] = []
    for n in range(calls):
        started = time.perf_counter()
        await setup.part(part, n)
        seconds.append(time.perf_counter() - started)
    return seconds


async def concurrent(setup: Setup, part: str, calls: int, width: int = 16) -> float:
    """Mean wall time per call with `width` calls in flight."""
    async def one(n: int) -> None:
        await setup.part(part, n)

    started = time.perf_counter()
    for batch in range(0, calls, width):
        await asyncio.gather(*(one(batch + i) for i in range(width)))
    return (time.perf_counter() - started) / (calls // width * width)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.0f}"


async def measure(setups: list[Setup], calls: int) -> None:
    print(f"\n{'part':<7}{'setup':<18}{'p50 µs':>9}{'mean µs':>9}{'16 at once µs':>15}")
    totals: dict[str, float] = {s.name: 0.0 for s in setups}
    for part in PARTS:
        for setup in setups:
            seconds = await sequential(setup, part, calls)
            p50 = statistics.median(seconds)
            totals[setup.name] += p50
            wide = await concurrent(setup, part, calls)
            print(f"{part:<7}{setup.name:<18}{us(p50)}{us(statistics.fmean(seconds))}{us(wide):>15}")
    print("\nper read call (auth + rate + slot + one audit record, p50 sum; a change adds one more record):")
    for name, total in totals.items():
        print(f"  {name:<18}{us(total)} µs")


async def main(calls: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="state-bench-"))
    server = start_nats(workdir / "one")
    cluster = start_nats_cluster(workdir / "cluster")
    connections: list[NatsClient] = []
    try:
        one = await nats.connect(server.url)
        three = await nats.connect(servers=cluster.urls[:1])
        connections += [one, three]
        setups = [local_setup(workdir), await jetstream_setup("jetstream-R1", one, 1, workdir),
                  await jetstream_setup("jetstream-R3", three, 3, workdir)]
        await measure(setups, calls)
    finally:
        for nc in connections:
            await nc.close()
        cluster.stop()
        server.proc.stop()


def run(fn: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(fn(parser.parse_args().calls))


if __name__ == "__main__":
    run(main)
