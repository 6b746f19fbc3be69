"""Benchmark the whole path: gateway + NATS + worker versus the same Proxmox call made directly.

Starts its own NATS, simulator, both workers and the gateway on loopback, then prints, from one run:
  - p50/p99 of list_vms through /mcp (official MCP client) vs. a direct proxmoxer call vs. a raw NATS request,
  - sequential and 32-concurrent list_vms calls per second through /mcp,
  - RSS of the gateway and each worker.
Usage: uv run python bench/stack_bench.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
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

from tests.support.mcp_client import http_client  # noqa: E402
from tests.support.nats import start_nats  # noqa: E402
from tests.support.services import start_gateway, start_worker, wait_ready, write_private  # noqa: E402
from tests.support.sim import start_sim  # noqa: E402


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


def direct_samples(sim: Any, calls: int) -> list[float]:
    token = sim.admin_token
    api = ProxmoxAPI(sim.host, port=sim.api_port, user=token["user"], token_name=token["token_id"],
                     token_value=token["secret"], verify_ssl=sim.cert_file, service="PVE")
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


async def mcp_samples(url: str, token: str, calls: int) -> list[float]:
    samples = []
    async with http_client(url, token) as client:
        for _ in range(calls + 5):
            started = time.perf_counter()
            result = await client.call_tool("list_vms", {})
            samples.append(time.perf_counter() - started)
            assert not result.is_error, result.content
    return samples[5:]


async def rest_samples(base_url: str, token: str, calls: int) -> list[float]:
    import httpx2

    samples = []
    async with httpx2.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(calls + 5):
            started = time.perf_counter()
            response = await http.post("/api/mcp/tools/call", json={"name": "list_vms", "arguments": {}})
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return samples[5:]


async def throughput(url: str, token: str, concurrency: int, calls: int,
                     cpu_of: dict[str, int] | None = None) -> tuple[float, dict[str, float]]:
    """Steady-state calls/s: every client opens its session (and makes one warm-up call) before the clock starts."""
    ready = asyncio.Barrier(concurrency + 1)
    go = asyncio.Event()

    async def one_client(share: int) -> None:
        async with http_client(url, token) as client:
            assert not (await client.call_tool("list_vms", {})).is_error
            await ready.wait()
            await go.wait()
            for _ in range(share):
                result = await client.call_tool("list_vms", {})
                assert not result.is_error

    clients = [asyncio.create_task(one_client(calls // concurrency)) for _ in range(concurrency)]
    await ready.wait()
    cpu_before = {name: cpu_seconds(pid) for name, pid in (cpu_of or {}).items()}
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*clients)
    elapsed = time.perf_counter() - started
    done = (calls // concurrency) * concurrency
    cpu_ms = {name: (cpu_seconds(pid) - cpu_before[name]) / done * 1000 for name, pid in (cpu_of or {}).items()}
    return done / elapsed, cpu_ms


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pmcp-bench-"))
    nats_server = start_nats(workdir / "nats")
    sim = start_sim(workdir / "sim")
    procs = [nats_server.proc, sim.proc]
    try:
        sim_info = {k: getattr(sim, k) for k in vars(sim) if k != "proc"}
        config = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_info)))
        env = {"LOG_LEVEL": "WARNING"}
        workers = {k: start_worker(k, nats_server.url, config, workdir, env=env) for k in ("ssh-worker", "api-worker")}
        procs += workers.values()
        gateway = start_gateway(nats_server.url, workdir, env={"LOG_LEVEL": "WARNING"})
        procs.append(gateway.proc)
        wait_ready(gateway)

        direct = direct_samples(sim, args.calls)
        via_nats = await nats_samples(nats_server.url, args.calls)
        via_mcp = await mcp_samples(gateway.url, gateway.token, args.calls)
        via_rest = await rest_samples(gateway.base_url, gateway.token, args.calls)
        print(summary("direct proxmoxer GET", direct))
        print(summary("NATS request to api-worker", via_nats))
        print(summary("MCP tools/call via gateway", via_mcp))
        print(summary("REST tools/call via gateway", via_rest))
        added50 = (pct(via_mcp, 0.5) - pct(direct, 0.5)) * 1000
        added99 = (pct(via_mcp, 0.99) - pct(direct, 0.99)) * 1000
        nats50 = (pct(via_nats, 0.5) - pct(direct, 0.5)) * 1000
        print(f"added by gateway+NATS+worker:      p50 {added50:6.2f} ms   p99 {added99:6.2f} ms"
              f"   (goal <= 2 / <= 10 ms)")
        print(f"  of which NATS+worker envelope:   p50 {nats50:6.2f} ms; MCP HTTP + gateway: "
              f"{added50 - nats50:6.2f} ms")
        seq, _ = await throughput(gateway.url, gateway.token, 1, args.calls)
        measured = {"gateway": gateway.proc.pid, **{k: p.pid for k, p in workers.items()},
                    "simulator": sim.proc.pid, "nats-server": nats_server.proc.pid, "bench (MCP client)": os.getpid()}
        conc, cpu_ms = await throughput(gateway.url, gateway.token, 32, max(args.calls, 320) * 3, measured)
        print(f"list_vms through /mcp: sequential {seq:7.1f} calls/s, 32 concurrent {conc:7.1f} calls/s"
              f"   (goal >= 300)")
        print("CPU per call in the 32-concurrent run (2 cores shared by all of these):")
        for name, used in cpu_ms.items():
            print(f"  {name:<20} {used:6.2f} ms")
        for name, proc in [("gateway", gateway.proc), *workers.items()]:
            print(f"RSS {name:<11} {rss_mib(proc.pid):6.1f} MiB   (goal < 120)")
    finally:
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    asyncio.run(main())
