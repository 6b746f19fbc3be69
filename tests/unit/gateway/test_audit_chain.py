"""The audit chain on real files: sealing in write order, the chain kept across restarts, rotations, a torn line,
two writers on one file and failed writes; the key file; the anchor; the verifier's findings."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_gateway.audit import AuditError, AuditLog
from proxmox_mcp_gateway.audit_chain import AuditKey, Sealed, parse_anchor, parse_line
from proxmox_mcp_gateway.audit_chain_writer import ChainWriter
from proxmox_mcp_gateway.audit_key import AuditKeyError, load_audit_key, load_or_create_audit_key
from proxmox_mcp_gateway.audit_verify import FileVerification, verify_files

KEY = AuditKey(b"k" * 32)


def chained_log(path: Path, *, key: AuditKey = KEY, max_bytes: int = 64 * 1024 * 1024, backups: int = 5,
                **kwargs: Any) -> AuditLog:
    return AuditLog(path, max_bytes=max_bytes, backups=backups,
                    chain=ChainWriter(path, key, backups=backups, anchor_interval=3600), **kwargs)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def verified(path: Path, *keys: AuditKey) -> FileVerification:
    return verify_files(path, {key.kid: key for key in keys or (KEY,)}, path.with_name(f"{path.name}.anchor"))


async def test_concurrent_records_are_chained_in_the_order_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "not-there-yet" / "audit.jsonl"
    log = chained_log(path)
    await asyncio.gather(*(log.append({"n": i}) for i in range(100)))
    await log.close()
    lines = records(path)
    assert [r["seq"] for r in lines] == list(range(1, 101))
    assert all(r["prev"] == before["mac"] for before, r in zip(lines, lines[1:], strict=False))
    assert lines[0]["chain_start"] == {"reason": "new audit log", "previous": None}
    assert sorted(r["n"] for r in lines) == list(range(100)) and log.written == 100
    result = verified(path)
    assert result.walk.ok and result.anchor is not None and result.anchor.head.seq == 100, result.walk.problems


async def test_a_restarted_writer_goes_on_with_the_same_chain(tmp_path: Path) -> None:
    for part in range(3):
        log = chained_log(tmp_path / "audit.jsonl")
        for i in range(5):
            await log.append({"part": part, "n": i})
        await log.close()
    lines = records(tmp_path / "audit.jsonl")
    assert [r["seq"] for r in lines] == list(range(1, 16)) and len({r["chain"] for r in lines}) == 1
    assert sum("chain_start" in r for r in lines) == 1
    assert verified(tmp_path / "audit.jsonl").walk.ok


async def test_the_chain_runs_across_rotations_and_starts_where_the_oldest_kept_file_does(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = chained_log(path, max_bytes=4096, backups=2)
    for i in range(120):
        await log.append({"n": i, "pad": "x" * 100})
    await log.close()
    oldest = records(tmp_path / "audit.jsonl.2")
    anchor = parse_anchor((tmp_path / "audit.jsonl.anchor").read_bytes(), {KEY.kid: KEY})
    assert oldest[0]["seq"] > 1 and anchor.start.seq == oldest[0]["seq"] and anchor.start.mac == oldest[0]["prev"]
    newest = records(path)
    assert records(tmp_path / "audit.jsonl.1")[-1]["mac"] == newest[0]["prev"]
    result = verified(path)
    assert result.walk.ok, result.walk.problems
    (tmp_path / "audit.jsonl.2").unlink()  # not a rotation: someone removed the oldest file
    problems = verified(path).walk.problems
    assert problems[0].kind == "removed" and "at the start are missing" in problems[0].detail, problems


async def test_half_a_line_left_by_a_crash_is_cut_and_the_chain_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = chained_log(path)
    await log.append({"n": 1})
    await log.close()
    with open(path, "ab") as handle:
        handle.write(b'{"n":2,"chain":"')  # never acknowledged: the process died mid-write
    log = chained_log(path)
    await log.append({"n": 3})
    await log.close()
    assert [r["n"] for r in records(path)] == [1, 3] and verified(path).walk.ok


async def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first, second = chained_log(path), chained_log(path)
    for i in range(30):
        await asyncio.gather(first.append({"w": 1, "n": i}), second.append({"w": 2, "n": i}))
    await first.close()
    await second.close()
    lines = records(path)
    assert [r["seq"] for r in lines] == list(range(1, 61)) and len({r["chain"] for r in lines}) == 1
    assert verified(path).walk.ok


async def test_two_writers_rotating_and_anchoring_one_file_keep_it_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    def writer() -> AuditLog:
        return AuditLog(path, max_bytes=4096, backups=2,
                        chain=ChainWriter(path, KEY, backups=2, anchor_interval=0.001, anchor_every=3))

    first, second = writer(), writer()
    for i in range(80):
        await asyncio.gather(first.append({"w": 1, "n": i, "pad": "x" * 80}),
                             second.append({"w": 2, "n": i, "pad": "y" * 80}))
    await first.close()
    await second.close()
    assert records(tmp_path / "audit.jsonl.2")[0]["seq"] > 1  # rotations dropped the oldest files
    result = verified(path)
    assert result.walk.ok, result.walk.problems
    assert result.anchor is not None and result.anchor.head.seq == records(path)[-1]["seq"] == 160


async def test_a_failed_write_gives_its_sequence_numbers_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = chained_log(path, max_bytes=4096, backups=1)
    while not (tmp_path / "audit.jsonl.1").exists():
        await log.append({"pad": "x" * 200})
    blocker = tmp_path / "audit.jsonl.1"
    blocker.unlink()
    blocker.mkdir()
    (blocker / "in-the-way").touch()  # the next rotation cannot move the file there: that batch fails, sealed
    with pytest.raises(AuditError):
        for _ in range(100):
            await log.append({"pad": "y" * 200})
    (blocker / "in-the-way").unlink()
    blocker.rmdir()
    await log.append({"after": True, "pad": "z" * 200})
    await log.close()
    lines = [*records(blocker), *records(path)]
    assert [r["seq"] for r in lines] == list(range(lines[0]["seq"], lines[0]["seq"] + len(lines)))
    assert lines[-1] == {**lines[-1], "after": True} and verified(path).walk.ok, verified(path).walk.problems


async def test_a_deleted_log_goes_on_after_its_anchored_head_so_verify_names_the_loss(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = chained_log(path)
    await log.append({"n": 1})
    await log.close()
    path.unlink()
    log = chained_log(path)
    await log.append({"n": 2})
    await log.close()
    assert [r["seq"] for r in records(path)] == [2]
    problems = verified(path).walk.problems
    assert [p.kind for p in problems] == ["removed"] and "begins at seq 1" in problems[0].detail, problems


async def test_a_new_key_starts_a_new_chain_that_names_the_old_ones_end(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = chained_log(path)
    await log.append({"n": 1})
    await log.close()
    other = AuditKey(b"o" * 32)
    log = chained_log(path, key=other)
    await log.append({"n": 2})
    await log.close()
    old, new = records(path)
    assert new["seq"] == 1 and new["chain"] != old["chain"]
    assert new["chain_start"]["previous"] == {"chain": old["chain"], "seq": 1, "mac": old["mac"]}
    assert "the audit key changed" in new["chain_start"]["reason"]
    assert verified(path, KEY, other).walk.ok
    only_new = verified(path, other).walk.problems
    assert [p.kind for p in only_new] == ["wrong key"], only_new


async def test_a_log_from_before_chaining_keeps_its_records_and_chains_the_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event":"tool_call","n":0}\n')
    log = chained_log(path)
    await log.append({"n": 1})
    await log.close()
    result = verified(path)
    assert result.walk.ok and result.walk.legacy == 1
    assert records(path)[1]["chain_start"]["reason"] == "the audit log had no record sealed with this key"


async def test_a_record_cannot_set_the_chain_fields_itself(tmp_path: Path) -> None:
    log = chained_log(tmp_path / "audit.jsonl")
    await log.append({"n": 1, "seq": 99, "mac": "forged", "chain_start": "no"})
    await log.close()
    line = (tmp_path / "audit.jsonl").read_bytes().splitlines()[0]
    parsed = parse_line(line)
    assert isinstance(parsed, Sealed) and parsed.seq == 1 and parsed.authentic(KEY)


class Replica:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: dict[str, bytes] = {}

    async def store(self, line: bytes, message_id: str) -> None:
        if self.failures:
            self.failures -= 1
            raise AuditError("no quorum", unavailable=True)
        self.stored[message_id] = line


async def test_a_record_the_replica_refused_is_stored_again_with_the_same_message_id(tmp_path: Path) -> None:
    replica = Replica(failures=1)
    log = chained_log(tmp_path / "audit.jsonl", replica=replica)
    with pytest.raises(AuditError):
        await log.append({"n": 1})
    line = (tmp_path / "audit.jsonl").read_bytes().rstrip(b"\n")
    chain = json.loads(line)["chain"]
    async with asyncio.timeout(10):
        while log.unreplicated:
            await asyncio.sleep(0.05)
    assert replica.stored == {f"{chain}.1": line}
    await log.close()


def test_the_key_file_is_generated_private_once_and_reread(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    key = load_or_create_audit_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(path.read_text().strip()) == 64
    assert load_or_create_audit_key(path).kid == key.kid == load_audit_key(path).kid
    assert key.secret.decode() not in repr(key)


def test_a_short_or_missing_key_file_is_refused_naming_the_file_not_the_key(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("too-short-secret\n")
    with pytest.raises(AuditKeyError, match="holds 16 bytes; a key needs at least 32") as caught:
        load_audit_key(short)
    assert "too-short-secret" not in str(caught.value) and str(short) in str(caught.value)
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_audit_key(tmp_path / "missing.key")
