"""Benchmark our read tools against canvrno/ProxmoxMCP's equivalents on the same simulator.

Starts our stack as bench/stack_bench.py does (NATS, pve-sim, both workers, the gateway) and the peer over stdio
against the same simulator, from the checkout given with --peer (its venv is built once and cached). Then, per pair
of equivalent tools, in rounds that alternate the sides so the machine's noise hits all of them:
  - p50/p99 latency and calls/s at 1 and at N calls in flight (--in-flight, default 8), for ours over stdio
    (`proxmox-mcp stdio`, official MCP client), over /mcp (official client; and the lean client of lean_mcp.py),
    and for the peer over stdio (official client; it has no HTTP transport), and the ratios to the peer;
  - where one call of each pair answers differently, field by field;
  - for each of our tools, where the time goes inside the services (their own histograms).
Usage: uv run python bench/peer_bench.py --peer /path/to/ProxmoxMCP [--rounds 5 --calls 80]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import importlib.metadata  # noqa: E402

from mcp import Client  # noqa: E402
from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME  # noqa: E402

from bench.lean_mcp import PROTOCOL, lean_client  # noqa: E402
from bench.peer_pairs import ToolPair, compare, tool_pairs  # noqa: E402
from bench.peer_server import default_cache_root, ensure_peer_venv, peer_argv, peer_env, write_peer_config  # noqa: E402
from bench.stack_bench import BenchStack, Stage, pct, running_stack, server_stages, stage_totals  # noqa: E402
from tests.support.mcp_client import http_client, stdio_mcp_client  # noqa: E402
from tests.support.procs import VENV_BIN  # noqa: E402
from tests.support.services import GatewayProc  # noqa: E402

Call = Callable[[], Awaitable[None]]


def _tool_of(pair: ToolPair, ours: bool) -> tuple[str, dict[str, Any]]:
    return (pair.ours, pair.ours_args) if ours else (pair.peer, pair.peer_args)


async def _checked_call(client: Client, tool: str, args: dict[str, Any]) -> None:
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")


class Side(Protocol):
    """One way of calling one server."""

    name: str
    ours: bool
    transport: str
    """'stdio' or '/mcp': which of our processes measure the calls."""

    @property
    def protocol(self) -> str: ...

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        """in_flight functions making one call each of the pair's tool, to be run concurrently."""
        ...


class StdioSide:
    """A stdio server serves one client: the calls in flight share its session."""

    transport = "stdio"

    def __init__(self, name: str, ours: bool, client: Client) -> None:
        self.name, self.ours, self.client = name, ours, client

    @property
    def protocol(self) -> str:
        return self.client.protocol_version

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        tool, args = _tool_of(pair, self.ours)
        return [lambda: _checked_call(self.client, tool, args)] * in_flight


class HttpSide:
    """Our /mcp through the official client: one client (its own connection) per call in flight."""

    ours, transport = True, "/mcp"

    def __init__(self, name: str, open_client: Callable[[], contextlib.AbstractAsyncContextManager[Client]],
                 exits: contextlib.AsyncExitStack) -> None:
        self.name, self._open, self._exits = name, open_client, exits
        self._clients: list[Client] = []

    @property
    def protocol(self) -> str:
        return self._clients[0].protocol_version if self._clients else "not connected yet"

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        while len(self._clients) < in_flight:
            self._clients.append(await self._exits.enter_async_context(self._open()))
        return [functools.partial(_checked_call, client, pair.ours, pair.ours_args)
                for client in self._clients[:in_flight]]


class LeanSide:
    """Our /mcp through lean_mcp: one keep-alive connection per call in flight, its request prepared. Connections
    are opened (and used once) for each block, before its clock starts: an idle one is closed by the server after
    a few seconds, and the other sides' blocks take longer than that."""

    ours, transport, protocol = True, "/mcp", PROTOCOL

    def __init__(self, name: str, gateway: GatewayProc, exits: contextlib.AsyncExitStack) -> None:
        self.name, self._gateway = name, gateway
        self._connections = contextlib.AsyncExitStack()
        exits.push_async_callback(self._connections.aclose)

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        await self._connections.aclose()
        self._connections = contextlib.AsyncExitStack()
        clients = [await self._connections.enter_async_context(
            lean_client(self._gateway.url, self._gateway.token, pair.ours, pair.ours_args)) for _ in range(in_flight)]
        for client in clients:
            await client.call()
        return [client.call for client in clients]


@contextlib.asynccontextmanager
async def opened_sides(stack: BenchStack, peer_python: Path, workdir: Path) -> AsyncIterator[list[Side]]:
    """Ours over stdio, over /mcp (official and lean clients), and the peer over stdio: all clients close on exit."""
    gateway, sim = stack.gateway, stack.sim
    async with contextlib.AsyncExitStack() as exits:
        logs = [exits.enter_context((workdir / f"{name}.stderr").open("w")) for name in ("ours-stdio", "peer")]
        ours_env = {"NATS_URL": stack.nats.url, "LOG_LEVEL": "WARNING", "PMCP_STATE_DIR": str(workdir / "stdio")}
        ours_stdio = await exits.enter_async_context(
            stdio_mcp_client([str(VENV_BIN / "proxmox-mcp"), "stdio"], ours_env, logs[0]))
        config = write_peer_config(workdir / "peer-config.json", sim)
        peer_stdio = await exits.enter_async_context(
            stdio_mcp_client(peer_argv(peer_python), peer_env(config, sim), logs[1], cwd=workdir))
        yield [
            StdioSide("ours stdio", True, ours_stdio),
            HttpSide("ours /mcp", lambda: http_client(gateway.url, gateway.token), exits),
            LeanSide("ours /mcp lean", gateway, exits),
            StdioSide("peer stdio", False, peer_stdio),
        ]


@dataclass
class Tally:
    samples: list[float] = field(default_factory=list[float])
    calls: int = 0
    seconds: float = 0.0
    stages: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    """stage -> [seconds, observations] summed over the blocks (ours only)."""

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


async def measure(stack: BenchStack, sides: list[Side], pairs: tuple[ToolPair, ...], rounds: int, calls: int,
                  in_flight: int) -> dict[Key, Tally]:
    tallies: dict[Key, Tally] = {}
    for round_number in range(rounds):
        for index, pair in enumerate(pairs):
            shift = (round_number + index) % len(sides)
            for side in sides[shift:] + sides[:shift]:
                for level in (1, in_flight):
                    tally = tallies.setdefault((side.name, index, level), Tally())
                    callers = await side.callers(pair, level)
                    before = stack.scrape() if side.ours else None
                    samples, done, seconds = await run_block(callers, calls)
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
    print("load at the end " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


if __name__ == "__main__":
    asyncio.run(main())
