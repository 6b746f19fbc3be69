"""The audit log: durability, rotation and failure accounting."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from proxmox_mcp_gateway.audit import AuditError, AuditLog


async def test_audit_records_are_appended_as_private_json_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    await asyncio.gather(*(log.append({"n": i}) for i in range(50)))
    lines = (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["n"] for line in lines) == list(range(50))
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600 and log.written == 50 and log.healthy
    await log.close()


async def test_audit_log_rotates_by_size_and_keeps_the_configured_backups(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4096, backups=2)
    for i in range(200):
        await log.append({"n": i, "pad": "x" * 100})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    last = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert last["n"] == 199


async def test_a_log_moved_away_by_logrotate_is_reopened_at_its_path(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    await log.append({"n": 1})
    os.rename(log.path, tmp_path / "old.jsonl")
    await log.append({"n": 2})
    assert json.loads(log.path.read_text())["n"] == 2


async def test_a_failed_write_raises_counts_and_calls_back(tmp_path: Path) -> None:
    seen: list[Exception] = []
    path = tmp_path / "audit.jsonl"
    path.mkdir()
    log = AuditLog(path, on_failure=seen.append)
    with pytest.raises(AuditError):
        await log.append({"n": 1})
    assert log.failures == 1 and not log.healthy and len(seen) == 1
    path.rmdir()
    await log.append({"n": 2})
    assert log.healthy and log.failures == 1
