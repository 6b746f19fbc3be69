"""What the tamper-evident audit chain costs: sealing one record (JSON + HMAC-SHA256) against writing it plain,
`audit verify`'s speed, and one audit record through AuditLog with and without the chain (fsync'd file; file +
acknowledged publish to a JetStream stream on one local nats-server), measured in one run.

Usage: uv run python bench/audit_chain_bench.py [--records 20000] [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nats  # noqa: E402
from proxmox_mcp_gateway.audit import AuditLog  # noqa: E402
from proxmox_mcp_gateway.audit_chain import AuditKey, ChainHead, dumps, seal  # noqa: E402
from proxmox_mcp_gateway.audit_chain_writer import ChainWriter  # noqa: E402
from proxmox_mcp_gateway.audit_stream import JetStreamAudit  # noqa: E402
from proxmox_mcp_gateway.audit_verify import verify_files  # noqa: E402

from tests.support.nats import start_nats  # noqa: E402

RECORD: dict[str, Any] = {
    "ts": "2026-12-06T00:00:00.000Z", "event": "tool_call", "request_id": "0" * 32, "token_id": "0123456789ab",
    "client": "127.0.0.1", "transport": "http", "tool": "list_vms", "arguments": {}, "result": "ok",
    "decision": {"allowed": True, "reason": "scope read includes read", "required_scope": "read"},
    "duration_ms": 2.5, "trace_id": "0" * 32}
KEY = AuditKey(b"b" * 64)


def per_record_us(records: int) -> tuple[float, float]:
    """Microseconds per record: plain JSON line, sealed line (JSON + chain fields + HMAC)."""
    started = time.perf_counter()
    for _ in range(records):
        dumps(RECORD)
    plain = (time.perf_counter() - started) / records
    head = ChainHead.new("bench")
    started = time.perf_counter()
    for _ in range(records):
        _, head = seal(RECORD, KEY, head)
    sealed = (time.perf_counter() - started) / records
    return plain * 1e6, sealed * 1e6


async def verify_rate(workdir: Path, records: int) -> float:
    path = workdir / "verify" / "audit.jsonl"
    log = AuditLog(path, chain=ChainWriter(path, KEY, backups=5))
    for start in range(0, records, 500):
        await asyncio.gather(*(log.append(RECORD) for _ in range(min(500, records - start))))
    await log.close()
    started = time.perf_counter()
    result = verify_files(path, {KEY.kid: KEY}, path.with_name("audit.jsonl.anchor"))
    seconds = time.perf_counter() - started
    assert result.walk.ok and result.walk.records == records, result.walk.problems[:3]
    return records / seconds


async def latency(log: AuditLog, calls: int) -> tuple[float, float]:
    """p50 µs of one append at a time, and mean µs per append with 16 at once."""
    for _ in range(20):
        await log.append(RECORD)
    seconds: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await log.append(RECORD)
        seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(calls // 16):
        await asyncio.gather(*(log.append(RECORD) for _ in range(16)))
    wide = (time.perf_counter() - started) / (calls // 16 * 16)
    await log.close()
    return statistics.median(seconds) * 1e6, wide * 1e6


async def main(records: int, calls: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="audit-chain-bench-"))
    plain, sealed = per_record_us(records)
    print(f"per record: JSON line {plain:.1f} µs, sealed line {sealed:.1f} µs (chain adds {sealed - plain:.1f} µs)")
    print(f"audit verify: {await verify_rate(workdir, records):,.0f} records/s ({records} records)")
    server = start_nats(workdir / "nats")
    try:
        nc = await nats.connect(server.url)
        print(f"\n{'one audit record':<34}{'p50 µs':>9}{'16 at once µs':>15}")
        for name, replicated in (("file", False), ("file + JetStream R1", True)):
            for chained in (False, True):
                path = workdir / f"{name.replace(' ', '')}-{chained}" / "audit.jsonl"
                replica = JetStreamAudit(lambda: nc, gateway_id=f"bench{int(chained)}", replicas=1) if replicated \
                    else None
                chain = ChainWriter(path, KEY, backups=5) if chained else None
                p50, wide = await latency(AuditLog(path, replica=replica, chain=chain), calls)
                label = f"{name}{', chained' if chained else ''}"
                print(f"{label:<34}{p50:9.0f}{wide:15.0f}")
        await nc.close()
    finally:
        server.proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=300)
    options = parser.parse_args()
    asyncio.run(main(options.records, options.calls))
