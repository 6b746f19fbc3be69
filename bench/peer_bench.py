"""Benchmark our read tools against canvrno/ProxmoxMCP's equivalents on the same simulator.

Starts our stack as bench/stack_bench.py does (NATS, pve-sim, both workers, the gateway) and the peer over stdio
against the same simulator, from the checkout given with --peer (its venv is built once and cached). Then, per pair
of equivalent tools, in rounds that alternate the sides so the machine's noise hits all of them:
  - p50/p99 latency and calls/s at 1 and at N calls in flight (--in-flight, default 8), for ours over stdio
    (`proxmox-mcp stdio`, official MCP client, in the 2026 era and in the older one the peer speaks), over /mcp
    (official client; and the lean client of lean_mcp.py), and for the peer over stdio (official client; it has no
    HTTP transport), and the ratios to the peer;
  - where one call of each pair answers differently, field by field;
  - for each of our tools, where the time goes inside the services (their own histograms);
  - CPU per call of every process (client, stdio server, gateway, api-worker, NATS, simulator).
Usage: uv run python bench/peer_bench.py --peer /path/to/ProxmoxMCP [--rounds 5 --calls 80]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import importlib.metadata  # noqa: E402

from mcp import Client  # noqa: E402
from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME  # noqa: E402

from bench.peer_pairs import ToolPair, compare, tool_pairs  # noqa: E402
from bench.peer_server import default_cache_root, ensure_peer_venv  # noqa: E402
from bench.peer_sides import Call, Side, StdioSide, opened_sides  # noqa: E402
from bench.stack_bench import (  # noqa: E402
    BenchStack,
    Stage,
    cpu_seconds,
    pct,
    running_stack,
    server_stages,
    stage_totals,
)
from tests.support.mcp_client import http_client  # noqa: E402


@dataclass
class Tally:
    samples: list[float] = field(default_factory=list[float])
    calls: int = 0
    seconds: float = 0.0
    stages: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    """stage -> [seconds, observations] summed over the blocks (ours only)."""
    cpu: dict[str, float] = field(default_factory=dict[str, float])
    """process -> CPU seconds used during the blocks."""

    def add_stages(self, totals: list[tuple[str, float, float]]) -> None:
        for stage, seconds, seen in totals:
            slot = self.stages.setdefault(stage, [0.0, 0.0])
            slot[0] += seconds
            slot[1] += seen

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def mean_ms(self, stage: str) -> float:
        """Per observation: a stage seen once per call may land on either side of a block's scrape."""
        seconds, seen = self.stages[stage]
        return seconds / seen * 1000 if seen else float("nan")


async def run_block(callers: list[Call], calls: int) -> tuple[list[float], int, float]:
    """`calls` calls shared by the callers, each making its share one after another: (latencies, done, seconds)."""
    share = max(1, calls // len(callers))
    samples: list[float] = []

    async def one_caller(call: Call) -> None:
        for _ in range(share):
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for call in callers:
            group.create_task(one_caller(call))
    return samples, share * len(callers), time.perf_counter() - started


def stages_of(pair: ToolPair, transport: str) -> tuple[Stage, ...]:
    """stack_bench's nested spans for our tool's api-worker op, plus the gateway's tool-call span; over stdio only
    the api-worker's (the stdio process serves no metrics)."""
    outer, nats, *worker = server_stages("/mcp", TOOLS_BY_NAME[pair.ours].op.value)
    tool_call = ("gateway tool call", "gateway", "proxmox_mcp_tool_call_duration_seconds", {"tool": pair.ours})
    return (outer, tool_call, nats, *worker) if transport == "/mcp" else tuple(worker)


async def warm_up(sides: list[Side], pairs: tuple[ToolPair, ...], in_flight: int) -> None:
    """Every connection opened and every caller's tool called once, before any clock runs."""
    for side in sides:
        for pair in pairs:
            for caller in await side.callers(pair, in_flight):
                await caller()


Key = tuple[str, int, int]
"""(side name, pair index, calls in flight)."""


def shared_processes(stack: BenchStack) -> dict[str, int]:
    """The processes every side's calls may use (besides its own stdio server), for CPU per call."""
    return {"client": os.getpid(), "gateway": stack.gateway.proc.pid, "api-worker": stack.workers["api-worker"].pid,
            "nats": stack.nats.proc.pid, "simulator": stack.sim.proc.pid}


async def measure(stack: BenchStack, sides: list[Side], pairs: tuple[ToolPair, ...], rounds: int, calls: int,
                  in_flight: int) -> dict[Key, Tally]:
    tallies: dict[Key, Tally] = {}
    shared = shared_processes(stack)
    for round_number in range(rounds):
        for index, pair in enumerate(pairs):
            shift = (round_number + index) % len(sides)
            for side in sides[shift:] + sides[:shift]:
                for level in (1, in_flight):
                    tally = tallies.setdefault((side.name, index, level), Tally())
                    callers = await side.callers(pair, level)
                    pids = {**shared, **({"stdio server": side.server_pid} if side.server_pid else {})}
                    before = stack.scrape() if side.ours else None
                    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    samples, done, seconds = await run_block(callers, calls)
                    for name, pid in pids.items():
                        tally.cpu[name] = tally.cpu.get(name, 0.0) + cpu_seconds(pid) - cpu_before[name]
                    if before is not None:
                        tally.add_stages(stage_totals(stages_of(pair, side.transport), before, stack.scrape()))
                    tally.samples += samples
                    tally.calls += done
                    tally.seconds += seconds
        print(f"  round {round_number + 1}/{rounds} done (load {os.getloadavg()[0]:.2f})", flush=True)
    return tallies


def print_latency(sides: list[Side], pairs: tuple[ToolPair, ...], tallies: dict[Key, Tally], in_flight: int) -> None:
    print("\nlatency and throughput (official MCP client unless 'lean'; ratios > 1: ours faster than the peer)")
    print(f"{'':<16}{'in flight':>10}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}{'peer p50/ours':>15}"
          f"{'ours/peer calls/s':>19}")
    peer = next(side for side in sides if not side.ours)
    for index, pair in enumerate(pairs):
        print(pair.label)
        for side in sides:
            for level in (1, in_flight):
                tally = tallies[(side.name, index, level)]
                ms = [s * 1000 for s in tally.samples]
                line = f"  {side.name:<14}{level:>10}{pct(ms, 0.5):>9.2f}{pct(ms, 0.99):>9.2f}{tally.rate:>9.1f}"
                if side.ours:
                    base = tallies[(peer.name, index, level)]
                    peer_p50 = pct(base.samples, 0.5)
                    line += f"{peer_p50 / pct(tally.samples, 0.5):>14.2f}x{tally.rate / base.rate:>18.2f}x"
                print(line)


def print_split(sides: list[Side], pairs: tuple[ToolPair, ...], tallies: dict[Key, Tally], in_flight: int) -> None:
    print("\nwhere our time goes, ms per call: the client's mean, the rest from the services' own histograms (nested "
          "spans, each minus the next; at more than 1 in flight they include waiting):")
    for index, pair in enumerate(pairs):
        print(pair.label.split(" vs ")[0])
        for side in (s for s in sides if s.ours):
            for level in (1, in_flight):
                tally = tallies[(side.name, index, level)]
                mean = sum(tally.samples) / len(tally.samples) * 1000
                worker = tally.mean_ms("api-worker handling")
                gets = tally.stages["Proxmox API request"][1] / tally.calls
                upstream = tally.mean_ms("Proxmox API request") * gets
                own = (f"worker own {worker - upstream:5.2f} | " if worker >= upstream
                       else f"worker {worker:5.2f}, its GETs overlapping | ")
                tail = f"{own}Proxmox API {upstream:5.2f} ({gets:.1f} GET)"
                if side.transport == "/mcp":
                    http = tally.mean_ms("gateway HTTP request")
                    tool = tally.mean_ms("gateway tool call")
                    nats = tally.mean_ms("gateway NATS request")
                    head = (f"client {mean - http:5.2f} | gateway HTTP layer {http - tool:5.2f} + call path "
                            f"{tool - nats:5.2f} | NATS hop {nats - worker:5.2f} | ")
                else:
                    head = f"client + stdio gateway + NATS hop {mean - worker:5.2f} | "
                print(f"  {side.name:<14} {level:>2} in flight: {mean:6.2f} = {head}{tail}")


def print_cpu(sides: list[Side], pairs: tuple[ToolPair, ...], tallies: dict[Key, Tally], in_flight: int) -> None:
    """CPU ms per call of each process during the side's blocks (2 cores shared by all of them)."""
    names = ("client", "stdio server", "gateway", "api-worker", "nats", "simulator")
    print("\nCPU per call, ms (the client is this bench: the official MCP client, or lean_mcp; 'stdio server' is "
          "`proxmox-mcp stdio` for ours, the peer's process for it; '-': not used by that side):")
    print(f"{'':<16}{'in flight':>10}" + "".join(f"{name:>13}" for name in names) + f"{'all':>8}")
    for index, pair in enumerate(pairs):
        print(pair.label)
        for side in sides:
            for level in (1, in_flight):
                tally = tallies[(side.name, index, level)]
                used = {name: seconds / tally.calls * 1000 for name, seconds in tally.cpu.items()}
                cells = "".join(f"{used[name]:>13.2f}" if name in used else f"{'-':>13}" for name in names)
                print(f"  {side.name:<14}{level:>10}{cells}{sum(used.values()):>8.2f}")


async def print_differences(pairs: tuple[ToolPair, ...], stack: BenchStack, peer_client: Client) -> None:
    print("\nwhere the answers differ (one call of each; the peer answers with text only, ours with structured "
          "content and a text rendering):")
    async with http_client(stack.gateway.url, stack.gateway.token) as ours:
        vms = (await ours.call_tool("list_vms", {})).structured_content or {}
        for pair in pairs:
            ours_result = await ours.call_tool(pair.ours, pair.ours_args)
            peer_result = await peer_client.call_tool(pair.peer, pair.peer_args)
            peer_text = "\n".join(getattr(block, "text", "") for block in peer_result.content)
            print(f"{pair.label}  (upstream GETs per call: the peer {pair.upstream(vms)} by its code)")
            for line in compare(pair, ours_result.structured_content or {}, peer_text):
                print(f"  {line}")
            if pair.note:
                print(f"  note: {pair.note}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", type=Path, required=True, help="a checkout of canvrno/ProxmoxMCP")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=80, help="calls per side, pair, in-flight level and round")
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_root(), help="where the peer's venv is kept")
    args = parser.parse_args()
    if args.rounds < 1 or args.calls < args.in_flight or args.in_flight < 2:
        parser.error("need --rounds >= 1, --in-flight >= 2 and --calls >= --in-flight")
    peer_python, peer_mcp = ensure_peer_venv(args.peer.resolve(), args.cache_dir)
    workdir = Path(tempfile.mkdtemp(prefix="pmcp-peer-bench-"))
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {os.cpu_count()} cores, load "
          + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    with running_stack(workdir) as stack:
        pairs = tool_pairs(stack.sim.nodes[0], len(stack.sim.nodes))
        async with opened_sides(stack, peer_python, workdir) as sides:
            await warm_up(sides, pairs, args.in_flight)
            print(f"ours: mcp {importlib.metadata.version('mcp')}; the peer: mcp {peer_mcp} from {args.peer}")
            print("protocol versions: " + ", ".join(f"{side.name} {side.protocol}" for side in sides))
            print(f"{args.rounds} rounds x {args.calls} calls per side, pair and level (1 and {args.in_flight} in "
                  "flight); the sides' order rotates every round and pair")
            peer = next(side for side in sides if isinstance(side, StdioSide) and not side.ours)
            await print_differences(pairs, stack, peer.client)
            tallies = await measure(stack, sides, pairs, args.rounds, args.calls, args.in_flight)
        print_latency(sides, pairs, tallies, args.in_flight)
        print_split(sides, pairs, tallies, args.in_flight)
        print_cpu(sides, pairs, tallies, args.in_flight)
    print("load at the end " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


def first_error(error: BaseException) -> BaseException:
    """The clients' task groups nest the one error that matters ten groups deep."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseExceptionGroup as group:
        raise first_error(group) from None
