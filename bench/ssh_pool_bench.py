"""Benchmark pooled execute versus connect-per-call, against a real local sshd (needs root and openssh-server).

Prints, from one run, p50/p99 of running `true` on the host:
  - pooled: SshPool, one connection reused, a new channel per command (what the ssh-worker does),
  - connect-per-call: a fresh SshPool per command (TCP + handshake + auth + exec + close, TCP_NODELAY),
  - naive paramiko: SSHClient().connect() + exec_command() + close() per command (no TCP_NODELAY),
and the pooled throughput with 8 concurrent callers. Goal: pooled >= 5x faster than connect-per-call.
Usage: uv run python bench/ssh_pool_bench.py [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paramiko  # noqa: E402
from _pytest.outcomes import Skipped  # noqa: E402
from proxmox_mcp_contracts.settings import HostConfig, SshSettings  # noqa: E402
from proxmox_mcp_runtime.ssh import SshPool, paramiko_pipes  # noqa: E402

from tests.support.sshd import SshdServer, start_sshd  # noqa: E402

HOST = HostConfig(node="bench", address="127.0.0.1")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{name:<28} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   (n={len(ms)})"


def settings_for(sshd: SshdServer) -> SshSettings:
    return SshSettings(user=sshd.user, port=sshd.port, key_path=sshd.ed25519_key, known_hosts=sshd.known_hosts)


async def pooled(sshd: SshdServer, calls: int) -> list[float]:
    pool = SshPool(settings_for(sshd))
    try:
        await pool.run(HOST, ["true"], timeout=10)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await pool.run(HOST, ["true"], timeout=10)
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        await pool.close()


async def pooled_concurrent(sshd: SshdServer, calls: int, concurrency: int = 8) -> float:
    pool = SshPool(settings_for(sshd))
    try:
        await pool.run(HOST, ["true"], timeout=10)
        queue = iter(range(calls))

        async def caller() -> None:
            for _ in queue:
                await pool.run(HOST, ["true"], timeout=10)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return calls / (time.perf_counter() - started)
    finally:
        await pool.close()


async def connect_per_call(sshd: SshdServer, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        pool = SshPool(settings_for(sshd), max_threads=2)
        try:
            await pool.run(HOST, ["true"], timeout=10)
        finally:
            await pool.close()
        samples.append(time.perf_counter() - started)
    return samples


def naive_paramiko(sshd: SshdServer, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        client = paramiko.SSHClient()
        client.load_host_keys(str(sshd.known_hosts))
        client.connect("127.0.0.1", port=sshd.port, username=sshd.user, key_filename=str(sshd.ed25519_key),
                       look_for_keys=False, allow_agent=False)
        _, stdout, _ = client.exec_command("true")
        stdout.channel.recv_exit_status()
        client.close()
        samples.append(time.perf_counter() - started)
    return samples


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="commands per pooled measurement")
    parser.add_argument("--connect-calls", type=int, default=40, help="commands per connect-per-call measurement")
    args = parser.parse_args()
    try:
        sshd = start_sshd(Path(tempfile.mkdtemp(prefix="ssh-bench-")))
    except Skipped as skipped:
        print(f"skipped: {skipped.msg}")
        return 0
    try:
        pooled_samples = await pooled(sshd, args.calls)
        fresh_samples = await connect_per_call(sshd, args.connect_calls)
        naive_samples = await asyncio.to_thread(naive_paramiko, sshd, args.connect_calls)
        rate = await pooled_concurrent(sshd, args.calls)
    finally:
        sshd.close()
    print(summary("pooled", pooled_samples))
    print(summary("connect-per-call (SshPool)", fresh_samples))
    print(summary("naive paramiko per call", naive_samples))
    print(f"{'pooled, 8 concurrent':<28} {rate:7.0f} calls/s")
    ratio = pct(fresh_samples, 0.5) / pct(pooled_samples, 0.5)
    verdict = "goal met" if ratio >= 5 else "goal MISSED"
    print(f"pooled is {ratio:.1f}x faster than connect-per-call at p50 (goal >= 5x: {verdict}); "
          f"{pct(naive_samples, 0.5) / pct(pooled_samples, 0.5):.1f}x faster than naive paramiko")
    return 0


if __name__ == "__main__":
    paramiko_pipes.install()  # as the ssh-worker's entry point does, so the pool runs as it does there
    sys.exit(asyncio.run(main()))
