"""Benchmark the api-worker: the same operation called in-process versus through NATS and the worker process.

Starts its own nats-server, simulator and api-worker on loopback, then prints, from one run:
  - p50/p99 of list_vms and vm_status called directly (ClusterOperations over HttpsBackend, in this process),
  - p50/p99 of the same operations as NATS requests to the worker (what the gateway does),
  - list_vms calls per second through NATS, sequential and 32 concurrent,
  - the worker's RSS.
Usage: uv run python bench/api_worker_bench.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nats  # noqa: E402
from proxmox_mcp_api_worker.operations import Budget, ClusterOperations  # noqa: E402
from proxmox_mcp_api_worker.pve_client import HttpsBackend  # noqa: E402
from proxmox_mcp_contracts import tools as t  # noqa: E402
from proxmox_mcp_contracts.subjects import ApiOp  # noqa: E402

from tests.integration.api.conftest import _cluster, write_config  # noqa: E402
from tests.integration.api.helpers import ok, start_api_worker  # noqa: E402
from tests.support.nats import start_nats  # noqa: E402
from tests.support.sim import start_sim  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{name:<34} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   (n={len(ms)})"


async def timed(calls: int, work: Callable[[], Awaitable[Any]]) -> list[float]:
    await work()  # warm up: connections, tickets, imports
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return samples


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        work = Path(tmp)
        server = start_nats(work / "nats")
        sim = start_sim(work / "sim")
        worker = None
        try:
            cluster = _cluster("bench", sim)
            config = write_config(work / "clusters.toml", [cluster])
            worker = start_api_worker(config, work, "api-worker", server.url)
            backend = HttpsBackend("bench", cluster.api, sim.host, threads=32)
            ops = ClusterOperations("bench", backend, ceiling=cluster.api.timeout)
            vmid = (await ops.list_vms(t.ListVmsArgs(), Budget(time.time() + 10, 5.0))).vms[0].vmid

            def budget() -> Budget:
                return Budget(time.time() + 10, 5.0)

            nc = await nats.connect(server.url)
            try:
                direct_list = await timed(calls, lambda: ops.list_vms(t.ListVmsArgs(), budget()))
                direct_status = await timed(calls, lambda: ops.vm_status(t.VmStatusArgs(vmid=vmid), budget()))
                nats_list = await timed(calls, lambda: ok(nc, "bench", ApiOp.LIST_VMS))
                nats_status = await timed(calls, lambda: ok(nc, "bench", ApiOp.VM_STATUS, {"vmid": vmid}))
                started = time.perf_counter()
                await asyncio.gather(*(ok(nc, "bench", ApiOp.LIST_VMS) for _ in range(calls)))
                concurrent_rate = calls / (time.perf_counter() - started)
                in_flight = asyncio.Semaphore(32)

                async def bounded() -> None:
                    async with in_flight:
                        await ok(nc, "bench", ApiOp.LIST_VMS)

                started = time.perf_counter()
                await asyncio.gather(*(bounded() for _ in range(calls)))
                rate32 = calls / (time.perf_counter() - started)
            finally:
                await nc.close()
                await backend.close()
            print(summary("list_vms direct (in-process)", direct_list))
            print(summary("list_vms via NATS + worker", nats_list))
            print(summary("vm_status direct (2 API requests)", direct_status))
            print(summary("vm_status via NATS + worker", nats_status))
            print(f"added by NATS + worker: list_vms p50 {(pct(nats_list, .5) - pct(direct_list, .5)) * 1000:.2f} ms,"
                  f" p99 {(pct(nats_list, .99) - pct(direct_list, .99)) * 1000:.2f} ms")
            print(f"list_vms via NATS sequential: {1 / (sum(nats_list) / len(nats_list)):7.1f} calls/s")
            print(f"list_vms via NATS 32 concurrent: {rate32:7.1f} calls/s (all {calls} at once: "
                  f"{concurrent_rate:.1f} calls/s)")
            print(f"api-worker RSS: {rss_mib(worker.pid):.1f} MiB")
        finally:
            if worker is not None:
                worker.stop()
            sim.proc.stop()
            server.proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Benchmark the api-worker (in-process vs. through NATS)")
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
