"""Benchmark the whole path: gateway + NATS + worker versus the same Proxmox call made directly.

Starts its own NATS, simulator, both workers and the gateway on loopback, then prints, from one run:
  - p50/p99 of list_vms through /mcp (official MCP client) vs. a direct proxmoxer call vs. a raw NATS request,
  - sequential and 32-concurrent list_vms calls per second through /mcp,
  - RSS of the gateway and each worker,
  - where a call's time goes inside the services (mean per call from their own latency histograms: gateway HTTP
    handling, its NATS request, the worker's handling, the Proxmox API request), without the client's share,
  - the floor (bench/floor_responder.py: a NATS round trip plus the worker's own upstream GET, nothing else)
    against the direct GET and ours through /mcp with the lean client, in interleaved rounds, with the gateway's
    CPU per call; and at 32 concurrent clients, ours and the floor with every process's CPU per call,
  - the simulator's own count of GET /cluster/resources against the calls made: no read is coalesced.
Usage: uv run python bench/stack_bench.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nats  # noqa: E402
from proxmox_mcp_cli.stack import config_for_sim  # noqa: E402
from proxmox_mcp_contracts.envelope import Caller, RequestEnvelope, Scope  # noqa: E402
from proxmox_mcp_contracts.subjects import ApiOp, api_subject  # noqa: E402
from proxmox_mcp_runtime.config import dump_config_toml  # noqa: E402
from proxmoxer import ProxmoxAPI  # noqa: E402

from bench.lean_mcp import lean_client  # noqa: E402
from tests.support.mcp_client import http_client  # noqa: E402
from tests.support.nats import NatsServer, start_nats  # noqa: E402
from tests.support.procs import Proc, free_port, start_process, wait_until  # noqa: E402
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private  # noqa: E402
from tests.support.sim import SimInfo, sim_requests, start_sim  # noqa: E402

FLOOR_SUBJECT = "bench.floor"
RESOURCES_GET = "GET /cluster/resources"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{name:<34} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   (n={len(ms)})"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Stage = tuple[str, str, str, dict[str, str]]
"""(stage, process that measures it, histogram family, labels a sample must carry)."""


def server_stages(handler: str, op: str = "list_vms") -> tuple[Stage, ...]:
    """Nested spans of one call of an api-worker op, outermost first, each measured by its own process."""
    return (
        ("gateway HTTP request", "gateway", "proxmox_mcp_http_request_duration_seconds", {"handler": handler}),
        ("gateway NATS request", "gateway", "proxmox_mcp_nats_request_duration_seconds", {"kind": "api"}),
        ("api-worker handling", "api-worker", "proxmox_mcp_worker_request_duration_seconds",
         {"kind": "api", "op": op}),
        ("Proxmox API request", "api-worker", "proxmox_mcp_api_request_duration_seconds", {"method": "GET"}),
    )


def histogram_totals(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]]:
    """(family, labels) -> (sum, count) of every histogram a /metrics page exposes."""
    import httpx2
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for family in text_string_to_metric_families(httpx2.get(metrics_url, timeout=10).text):
        for sample in family.samples:
            if family.type == "histogram" and sample.name.endswith(("_sum", "_count")):
                key = (family.name, tuple(sorted(sample.labels.items())))
                slot = totals.setdefault(key, [0.0, 0.0])
                slot[0 if sample.name.endswith("_sum") else 1] += sample.value
    return {key: (value[0], value[1]) for key, value in totals.items()}


def stage_totals(stages: tuple[Stage, ...], before: dict[str, Any],
                 after: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(stage, seconds observed, observations) of each stage between two scrapes."""
    totals = []
    for stage, process, family, wanted in stages:
        total = count = 0.0
        for (name, labels), (value, seen) in after[process].items():
            if name == family and set(wanted.items()) <= set(labels):
                old_value, old_seen = before[process].get((name, labels), (0.0, 0.0))
                total += value - old_value
                count += seen - old_seen
        totals.append((stage, total, count))
    return totals


def split_stages(tool: str = "list_vms") -> tuple[Stage, ...]:
    """server_stages for /mcp with the gateway's own call path (tool call: validation, policy, the NATS request;
    its audit record is written after it) between the HTTP request and the NATS request."""
    http, nats_request, *rest = server_stages("/mcp", tool)
    return (http, ("gateway tool call", "gateway", "proxmox_mcp_tool_call_duration_seconds", {"tool": tool}),
            nats_request, *rest)


def print_split(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Where one call of ours goes, outermost first, each span's mean less the next one's."""
    means = [total / count * 1000 if count else float("nan")
             for _, total, count in stage_totals(split_stages(), before, after)]
    parts = ("gateway HTTP/SDK layer + the audit write", "gateway call path (validation, policy, redaction)",
             "NATS hop (transit, the gateway's envelope encode/decode)",
             "api-worker (envelope, handler, result model)", "upstream GET (proxmoxer)")
    spans = [*(outer - inner for outer, inner in itertools.pairwise(means)), means[-1]]
    print("  where ours goes (means from the services' histograms): "
          + "; ".join(f"{part} {ms:.2f} ms" for part, ms in zip(parts, spans, strict=True))
          + f"; total in the gateway {means[0]:.2f} ms")


def stage_means(handler: str, before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, float]]:
    """(stage, mean ms per observation) of each server stage of list_vms between two scrapes."""
    return [(stage, total / count * 1000 if count else float("nan"))
            for stage, total, count in stage_totals(server_stages(handler), before, after)]


def print_stages(transport: str, handler: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    means = stage_means(handler, before, after)
    spans = "  ".join(f"{stage} {mean:5.2f}" for stage, mean in means)
    own = means[0][1] - means[1][1]
    hop = means[1][1] - means[2][1]
    print(f"  {transport:<5} {spans} ms\n"
          f"        the gateway's own share {own:5.2f} ms + the NATS hop {hop:5.2f} ms = {own + hop:5.2f} ms added by "
          "the server side (goal: gateway + NATS + worker <= 1 ms at p50)")


def direct_api(sim: SimInfo) -> Any:
    """proxmoxer on the simulator, as the admin token, its certificate pinned: the direct call."""
    token = sim.admin_token
    return ProxmoxAPI(sim.host, port=sim.api_port, user=token["user"], token_name=token["token_id"],
                      token_value=token["secret"], verify_ssl=sim.cert_file, service="PVE")


def direct_samples(sim: SimInfo, calls: int) -> list[float]:
    api = direct_api(sim)
    api.cluster.resources.get(type="vm")
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        api.cluster.resources.get(type="vm")
        samples.append(time.perf_counter() - started)
    return samples


async def nats_samples(nats_url: str, calls: int) -> list[float]:
    nc = await nats.connect(nats_url)
    caller = Caller(token_id="bench", scope=Scope.READ)
    samples = []
    try:
        for _ in range(calls + 5):
            envelope = RequestEnvelope(op="list_vms", args={}, deadline=time.time() + 10, caller=caller)
            started = time.perf_counter()
            await nc.request(api_subject("default", ApiOp.LIST_VMS), envelope.model_dump_json().encode(), timeout=10)
            samples.append(time.perf_counter() - started)
    finally:
        await nc.close()
    return samples[5:]


ClientFactory = Callable[[], contextlib.AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]
"""Opens one client and gives its 'make one list_vms call' function (which fails unless the call succeeds)."""


def official_client(url: str, token: str) -> ClientFactory:
    @contextlib.asynccontextmanager
    async def open_client() -> AsyncIterator[Callable[[], Awaitable[None]]]:
        async with http_client(url, token) as client:
            async def call() -> None:
                result = await client.call_tool("list_vms", {})
                assert not result.is_error, result.content
            yield call
    return open_client


def lean(url: str, token: str) -> ClientFactory:
    @contextlib.asynccontextmanager
    async def open_client() -> AsyncIterator[Callable[[], Awaitable[None]]]:
        async with lean_client(url, token) as client:
            yield client.call
    return open_client


def rest(base_url: str, token: str) -> ClientFactory:
    import httpx2

    @contextlib.asynccontextmanager
    async def open_client() -> AsyncIterator[Callable[[], Awaitable[None]]]:
        async with httpx2.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
            async def call() -> None:
                response = await http.post("/api/mcp/tools/call", json={"name": "list_vms", "arguments": {}})
                assert response.status_code == 200, response.text
            yield call
    return open_client


def upstream_gets(sim: SimInfo) -> int:
    """GET /cluster/resources requests the simulator has served (its own count)."""
    return sim_requests(sim).get(RESOURCES_GET, 0)


def start_floor(stack: BenchStack) -> Proc:
    """bench/floor_responder.py on the stack's NATS, with the workers' cluster config; returns once subscribed."""
    ready = stack.workdir / "floor.stdout"
    proc = start_process("floor-responder", [sys.executable, str(REPO / "bench" / "floor_responder.py"),
                                             "--nats", stack.nats.url, "--config", str(stack.config),
                                             "--subject", FLOOR_SUBJECT],
                         stack.workdir, env={"LOG_LEVEL": "WARNING"}, stdout_path=ready)
    wait_until(lambda: "ready" in ready.read_text(), timeout=30, what="the floor responder", proc=proc)
    return proc


@contextlib.asynccontextmanager
async def floor_client(nats_url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    nc = await nats.connect(nats_url)
    try:
        async def call() -> None:
            reply = await nc.request(FLOOR_SUBJECT, b"", timeout=10)
            assert reply.data.startswith(b"["), reply.data[:200]
        yield call
    finally:
        await nc.close()


async def floor_comparison(stack: BenchStack, calls: int, rounds: int = 10) -> None:
    """Direct GET, the floor and ours (lean client) in interleaved rounds; what the floor explains of our overhead;
    the gateway's CPU per call of ours."""
    api = direct_api(stack.sim)

    async def direct() -> None:
        api.cluster.resources.get(type="vm")

    samples: dict[str, list[float]] = {"direct": [], "floor": [], "ours": []}
    gateway_cpu = 0.0
    gets_before = upstream_gets(stack.sim)
    made = 0
    scraped = stack.scrape()
    async with floor_client(stack.nats.url) as floor, lean_client(stack.gateway.url, stack.gateway.token) as ours:
        sides: list[tuple[str, Callable[[], Awaitable[None]]]] = [("direct", direct), ("floor", floor),
                                                                  ("ours", ours.call)]
        for side in sides:
            for _ in range(5):
                await side[1]()
                made += 1
        per_round = max(1, calls // rounds)
        for round_no in range(rounds):
            for name, call in sides[round_no % 3:] + sides[:round_no % 3]:
                cpu_before = cpu_seconds(stack.gateway.proc.pid)
                for _ in range(per_round):
                    started = time.perf_counter()
                    await call()
                    samples[name].append(time.perf_counter() - started)
                made += per_round
                if name == "ours":
                    gateway_cpu += cpu_seconds(stack.gateway.proc.pid) - cpu_before
    gets = upstream_gets(stack.sim) - gets_before
    split = (scraped, stack.scrape())
    print(f"the floor, {rounds} interleaved rounds (order rotated each round):")
    print("  " + summary("direct GET (proxmoxer, no NATS)", samples["direct"]))
    print("  " + summary("floor: NATS round trip + the GET", samples["floor"]))
    print("  " + summary("ours: /mcp, lean client", samples["ours"]))
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        direct_q, floor_q, ours_q = (pct(samples[k], q) * 1000 for k in ("direct", "floor", "ours"))
        overhead, hop = ours_q - direct_q, floor_q - direct_q
        share = hop / overhead * 100 if overhead > 0 else float("nan")
        print(f"  {label}: overhead ours - direct {overhead:6.2f} ms (goal <= {1 if q == 0.5 else 5} ms); the floor "
              f"explains {hop:5.2f} ms of it ({share:3.0f}%), the rest {overhead - hop:5.2f} ms is the gateway, "
              "the envelope, policy, audit and the worker's own work")
    print_split(*split)
    print(f"  gateway CPU per call of ours: {gateway_cpu / len(samples['ours']) * 1000:.2f} ms (goal <= 0.5 ms)")
    print(f"  the simulator served {gets} GET /cluster/resources for {made} calls (no read coalesced: "
          f"{'yes' if gets == made else 'NO'})")


async def sequential_samples(open_client: ClientFactory, calls: int) -> list[float]:
    """Seconds per call, one call after another on one client (after 5 warm-up calls)."""
    samples = []
    async with open_client() as call:
        for _ in range(calls + 5):
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)
    return samples[5:]


@dataclass
class Throughput:
    per_second: float
    cpu_ms: dict[str, float]
    """CPU per timed call of each measured process."""
    made: int
    """Every call made, warm-up calls included."""


async def throughput(open_client: ClientFactory, concurrency: int, calls: int,
                     cpu_of: dict[str, int] | None = None) -> Throughput:
    """Steady-state calls/s: every client opens its session (and makes one warm-up call) before the clock starts."""
    ready = asyncio.Barrier(concurrency + 1)
    go = asyncio.Event()
    made = 0

    async def one_client(share: int) -> None:
        nonlocal made
        async with open_client() as call:
            await call()
            made += 1
            await ready.wait()
            await go.wait()
            for _ in range(share):
                await call()
                made += 1

    clients = [asyncio.create_task(one_client(calls // concurrency)) for _ in range(concurrency)]
    await ready.wait()
    cpu_before = {name: cpu_seconds(pid) for name, pid in (cpu_of or {}).items()}
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*clients)
    elapsed = time.perf_counter() - started
    done = (calls // concurrency) * concurrency
    cpu_ms = {name: (cpu_seconds(pid) - cpu_before[name]) / done * 1000 for name, pid in (cpu_of or {}).items()}
    return Throughput(done / elapsed, cpu_ms, made)


@dataclass
class BenchStack:
    """NATS, the simulator, both workers (metrics on their own ports) and the gateway, all on loopback."""

    workdir: Path
    config: Path
    nats: NatsServer
    sim: SimInfo
    workers: dict[str, Proc]
    worker_metrics: dict[str, int]
    gateway: GatewayProc

    @property
    def metrics_urls(self) -> dict[str, str]:
        """The /metrics page of each process whose histograms server_stages reads."""
        return {"gateway": f"{self.gateway.base_url}/metrics",
                "api-worker": f"http://127.0.0.1:{self.worker_metrics['api-worker']}/metrics"}

    def scrape(self) -> dict[str, Any]:
        return {name: histogram_totals(url) for name, url in self.metrics_urls.items()}


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[BenchStack]:
    """Starts the stack, waits until the gateway is ready, stops every process on the way out."""
    nats_server = start_nats(workdir / "nats")
    sim = start_sim(workdir / "sim")
    procs = [nats_server.proc, sim.proc]
    try:
        sim_info = {k: getattr(sim, k) for k in vars(sim) if k != "proc"}
        config = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_info)))
        env = {"LOG_LEVEL": "WARNING"}
        worker_metrics = {k: free_port() for k in ("ssh-worker", "api-worker")}
        workers = {k: start_worker(k, nats_server.url, config, workdir,
                                   env={**env, "PMCP_METRICS_PORT": str(port), "PMCP_METRICS_HOST": "127.0.0.1"})
                   for k, port in worker_metrics.items()}
        procs += workers.values()
        gateway = start_gateway(nats_server.url, workdir, env={"LOG_LEVEL": "WARNING"})
        procs.append(gateway.proc)
        wait_ready(gateway)
        yield BenchStack(workdir, config, nats_server, sim, workers, worker_metrics, gateway)
    finally:
        for proc in reversed(procs):
            proc.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with running_stack(Path(tempfile.mkdtemp(prefix="pmcp-bench-"))) as stack:
        nats_server, sim, workers, gateway = stack.nats, stack.sim, stack.workers, stack.gateway
        direct = direct_samples(sim, args.calls)
        via_nats = await nats_samples(nats_server.url, args.calls)
        scrapes = [stack.scrape()]
        via_mcp = await sequential_samples(official_client(gateway.url, gateway.token), args.calls)
        scrapes.append(stack.scrape())
        via_rest = await sequential_samples(rest(gateway.base_url, gateway.token), args.calls)
        scrapes.append(stack.scrape())
        print(summary("direct proxmoxer GET", direct))
        print(summary("NATS request to api-worker", via_nats))
        print(summary("MCP tools/call via gateway", via_mcp))
        print(summary("REST tools/call via gateway", via_rest))
        added50 = (pct(via_mcp, 0.5) - pct(direct, 0.5)) * 1000
        added99 = (pct(via_mcp, 0.99) - pct(direct, 0.99)) * 1000
        nats50 = (pct(via_nats, 0.5) - pct(direct, 0.5)) * 1000
        print(f"added by gateway+NATS+worker:      p50 {added50:6.2f} ms   p99 {added99:6.2f} ms"
              f"   (goal <= 1 / <= 5 ms)")
        print(f"  of which NATS+worker envelope:   p50 {nats50:6.2f} ms; MCP HTTP + gateway: "
              f"{added50 - nats50:6.2f} ms")
        print("inside the services, mean per list_vms call from their own histograms (nested, outermost first;"
              " the client's share left out):")
        print_stages("MCP", "/mcp", scrapes[0], scrapes[1])
        print_stages("REST", "/api/mcp/tools/call", scrapes[1], scrapes[2])
        via_lean = await sequential_samples(lean(gateway.url, gateway.token), args.calls)
        print(summary("MCP tools/call, lean client", via_lean)
              + f"   added p50 {(pct(via_lean, 0.5) - pct(direct, 0.5)) * 1000:.2f} ms")
        measured = {"gateway": gateway.proc.pid, **{k: p.pid for k, p in workers.items()},
                    "simulator": sim.proc.pid, "nats-server": nats_server.proc.pid, "bench (the client)": os.getpid()}
        for label, factory in (("official MCP client", official_client(gateway.url, gateway.token)),
                               ("lean MCP client", lean(gateway.url, gateway.token))):
            seq = await throughput(factory, 1, args.calls)
            conc = await throughput(factory, 32, max(args.calls, 320) * 3, measured)
            print(f"list_vms through /mcp, {label}: sequential {seq.per_second:7.1f} calls/s, 32 concurrent "
                  f"{conc.per_second:7.1f} calls/s   (goal >= 1,000 with the lean client)")
            print("  CPU per call in the 32-concurrent run (2 cores shared by all of these): "
                  + ", ".join(f"{name} {used:.2f} ms" for name, used in conc.cpu_ms.items()))
        floor = start_floor(stack)
        try:
            await floor_comparison(stack, args.calls)
            measured["floor responder"] = floor.pid
            # Alternated twice so the machine's noise hits both sides.
            sides: list[tuple[str, ClientFactory]] = [("ours, lean MCP client", lean(gateway.url, gateway.token)),
                                                      ("the floor (NATS + GET)", lambda: floor_client(nats_server.url))]
            for label, factory in sides * 2:
                gets_before = upstream_gets(sim)
                conc = await throughput(factory, 32, max(args.calls, 320) * 3, measured)
                gets = upstream_gets(sim) - gets_before
                print(f"32 concurrent, {label}: {conc.per_second:7.1f} calls/s; the simulator served {gets} GETs for "
                      f"{conc.made} calls ({'none' if gets == conc.made else 'SOME'} coalesced)")
                print("  CPU per call: " + ", ".join(f"{name} {used:.2f} ms" for name, used in conc.cpu_ms.items()))
        finally:
            floor.stop()
        for name, proc in [("gateway", gateway.proc), *workers.items()]:
            print(f"RSS {name:<11} {rss_mib(proc.pid):6.1f} MiB   (goal < 120)")


if __name__ == "__main__":
    asyncio.run(main())
