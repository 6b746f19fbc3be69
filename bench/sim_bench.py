"""pve-sim start time (spawn -> ready line) and GET latency on one keep-alive HTTPS connection.

    uv run python bench/sim_bench.py [--requests 500] [--starts 3]

Prints numbers from one run; goals on this machine: start < 2 s, GET p50 < 5 ms. Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PVE_SIM = Path(sys.executable).parent / "pve-sim"


def start(state_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, object], float]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        [str(PVE_SIM), "--port", "0", "--ssh-port", "0", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - began
    if not line:
        proc.kill()
        raise SystemExit(f"pve-sim exited with {proc.wait()} before it was ready")
    return proc, json.loads(line), elapsed


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--starts", type=int, default=3, help="cold starts to time (fresh state dir each)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sim-bench-"))
    try:
        starts = []
        for index in range(args.starts):
            proc, _, elapsed = start(work / f"cold-{index}")
            starts.append(elapsed)
            stop(proc)
        proc, info, warm = start(work / "cold-0")
        try:
            context = ssl.create_default_context(cafile=str(info["cert_file"]))
            connection = http.client.HTTPSConnection(str(info["host"]), int(str(info["api_port"])), context=context)
            headers = {"Authorization": str(dict(info["admin_token"])["header"])}  # type: ignore[arg-type]
            samples: dict[str, list[float]] = {}
            for path in ("/api2/json/version", "/api2/json/nodes/pve1/qemu", "/api2/json/cluster/resources"):
                timings = []
                for _ in range(args.requests):
                    began = time.perf_counter()
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    timings.append((time.perf_counter() - began) * 1000)
                    assert response.status == 200
                samples[path] = timings
            connection.close()
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"start (spawn -> ready line), cold state dir: min {min(starts):.2f} s, max {max(starts):.2f} s "
        f"over {len(starts)} starts; with an existing state dir: {warm:.2f} s"
    )
    for path, timings in samples.items():
        print(
            f"GET {path:<32} n={len(timings)}  p50 {statistics.median(timings):.2f} ms  "
            f"p99 {percentile(timings, 0.99):.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
