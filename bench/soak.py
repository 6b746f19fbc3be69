"""Soak: the high-availability layout under mixed MCP traffic for a while, with a random fault every minute.

Starts (as real processes, on this machine, as root: NATS nodes live in network namespaces) three NATS nodes
with JetStream R3, the simulator, two of each worker, two gateways on PMCP_STATE=jetstream and Caddy in front
of both (the repository's Caddyfile). Official MCP clients call through Caddy all the time: 2026-era clients read
(list_vms, vm_status, node_status) and change (vm_action with wait on a VM of their own, execute_command, both
with idempotency keys), a legacy-era client reads in its session and starts a new one when it loses it.

Every `--fault-every` seconds one fault from the matrix runs to its end: kill -9 of a gateway, a worker or a NATS
node (started again a few seconds later), a SIGTERM restart (drain) of a gateway or a worker, a NATS node cut
off in its network namespace for 15 s, the simulator frozen with SIGSTOP for 3-8 s.

Prints the success ratio, failures by code and by fault, the longest call, each fault's window and each failed
call with whether it fell in a fault's window and carries a clear code. Exit status 0 when every failure falls in
a fault's window with a clear code (reads retryable), 1 otherwise: the success ratio is reported, not judged.

Usage: uv run python bench/soak.py [--minutes 30] [--fault-every 60] [--clients 4] [--legacy 1] [--seed N]
                                   [--faults gateway-kill,nats-partition,...] [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ha_faults import MATRIX, Fault, SoakResult, soak  # noqa: E402
from tests.support.ha_load import LoadPlan  # noqa: E402
from tests.support.ha_stack import start_ha_layout  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Soak the high-availability layout under load with faults.")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds between two faults (default 60)")
    parser.add_argument("--clients", type=int, default=4, help="2026-era clients (default 4)")
    parser.add_argument("--legacy", type=int, default=1, help="legacy-era clients (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="chooses the faults (default: from the clock)")
    parser.add_argument("--faults", default=",".join(MATRIX), help="kinds to choose from (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this directory and keep it (every process's log) instead of a temporary one")
    args = parser.parse_args()
    unknown = set(args.faults.split(",")) - set(MATRIX)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(MATRIX)}")
    return args


def _as_json(result: SoakResult, seed: int) -> dict[str, object]:
    start = min([c.started for c in result.calls] + [f.started for f in result.faults] or [0.0])
    return {
        "seed": seed, "seconds": result.seconds, "calls": len(result.calls),
        "ok": sum(1 for c in result.calls if c.ok), "reinitialised": result.reinitialised,
        "load_average": [result.load_before, result.load_after], "passed": result.passed,
        "longest_call_s": max((c.seconds for c in result.calls), default=0.0),
        "faults": [{"name": f.name, "kind": f.kind, "window_s": [w - start for w in f.window]} for f in result.faults],
        "failures": [{"at_s": c.started - start, "seconds": c.seconds, "era": c.era, "tool": c.tool, "code": c.code,
                      "retryable": c.retryable, "in_window": bool(result.faults_of(c)), "clear": result.clear(c),
                      "message": c.message[:300]} for c in result.failures],
    }


async def main() -> int:
    args = _arguments()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    print(f"soak for {args.minutes:g} min, a fault every {args.fault_every:g} s (seed {seed}); starting the layout",
          flush=True)
    with contextlib.ExitStack() as cleanup:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = str(args.keep)
        else:
            workdir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="pmcp-soak-"))
        # Blocking start and stop in a thread: they poll with their own event loops.
        layout = await asyncio.to_thread(start_ha_layout, Path(workdir))
        try:
            tokens = await layout.accepted_tokens("soak", args.clients + args.legacy)
            plan = LoadPlan(url=layout.mcp_url, verify=layout.front.ssl_context(), tokens=tokens,
                            guests=layout.guests(), modern=args.clients, legacy=args.legacy)
            began = time.monotonic()

            def announce(fault: Fault) -> None:
                print(f"  {fault.started - began:7.1f}..{fault.ended - began:7.1f} s  {fault.name}", flush=True)

            result = await soak(layout, plan, seconds=args.minutes * 60, fault_every=args.fault_every, rng=rng,
                                kinds=args.faults.split(","), on_fault=announce)
        finally:
            await asyncio.to_thread(layout.stop)
    print(result.report())
    if args.json is not None:
        args.json.write_text(json.dumps(_as_json(result, seed), indent=1))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
