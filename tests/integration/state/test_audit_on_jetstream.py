"""The audit log with PMCP_STATE=jetstream (one real nats-server, a real gateway) and `proxmox-mcp audit` on the
stream and on the local file: every record in the stream and fsync'd in the file before the reply, the call
fails closed naming the stream when JetStream does not answer, and the CLI reads, exports and follows."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_gateway.audit import AuditLog

from tests.support.nats import NatsServer, start_nats
from tests.support.procs import wait_until
from tests.support.services import GatewayProc, start_gateway
from tests.support.shared_state import (
    CLI,
    audit_records,
    cli,
    connected,
    jetstream_env,
    ready_body,
    rest_call,
    trace_id,
)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, GatewayProc, Path]]:
    """A gateway on JetStream state without workers: its calls fail `unavailable` fast, and each is audited."""
    workdir = tmp_path_factory.mktemp("audit-js")
    nats = start_nats(workdir / "nats")
    gateway: GatewayProc | None = None
    try:
        audit_file = workdir / "gateway-audit.jsonl"
        gateway = start_gateway(nats.url, workdir, env=jetstream_env(1, PMCP_AUDIT_FILE=str(audit_file)))
        wait_until(lambda: ready_body(gateway)[1]["checks"]["state"] == "ok", timeout=20, what="state loaded",
                   proc=gateway.proc)
        yield nats, gateway, audit_file
    finally:
        if gateway is not None:
            gateway.proc.stop()
        nats.proc.stop()


def _cli_env(nats: NatsServer) -> dict[str, str]:
    return {"NATS_URL": nats.url, **jetstream_env(1)}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_calls_record_is_in_the_stream_and_in_the_local_file_when_its_reply_arrives(
    audited: tuple[NatsServer, GatewayProc, Path],
) -> None:
    nats, gateway, audit_file = audited
    trace = trace_id(0xA0D17)
    reply = rest_call(gateway.base_url, gateway.token, "list_vms", trace=trace)
    assert reply.code == "unavailable", reply.body  # no worker: still a call with a record
    # Read right after the reply: nothing is waited for, the records must already be there.
    in_file = [r for r in _lines(audit_file) if r.get("trace_id") == trace]
    async with connected(nats.url) as nc:
        in_stream = [r for r in await audit_records(nc) if r.get("trace_id") == trace]
    assert in_file == in_stream and len(in_stream) == 1, (in_file, in_stream)
    assert in_stream[0]["tool"] == "list_vms" and in_stream[0]["result"] == "unavailable"


def test_audit_export_show_and_follow_read_the_stream(
    audited: tuple[NatsServer, GatewayProc, Path], tmp_path: Path,
) -> None:
    nats, gateway, _ = audited
    traces = [trace_id(0xE0000 + n) for n in range(3)]
    for trace in traces:
        rest_call(gateway.base_url, gateway.token, "vm_status", {"vmid": 100, "node": "pve1"}, trace=trace)
    env = _cli_env(nats)
    out = tmp_path / "export.jsonl"
    exported = cli("audit", "export", "--out", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    records = _lines(out)
    assert [r["trace_id"] for r in records if r.get("trace_id") in traces] == traces
    assert "exported" in exported.stderr and oct(out.stat().st_mode & 0o777) == "0o600"
    shown = cli("audit", "show", "--last", "2", "--tool", "vm_status", env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 2 and all("tool=vm_status" in line and "unavailable" in line for line in lines), lines
    as_json = cli("audit", "show", "--json", "--all", "--tool", "vm_status", env=env)
    assert [json.loads(line)["trace_id"] for line in as_json.stdout.splitlines()][-3:] == traces
    _follow_prints_new_records(gateway, [*CLI, "audit", "follow", "--json"], env, tmp_path)


def _follow_prints_new_records(gateway: GatewayProc, argv: list[str], env: dict[str, str], tmp_path: Path) -> None:
    """`audit follow` as a process: calls are made until one of their records comes out of it."""
    out_path = tmp_path / "follow.out"
    with open(out_path, "wb") as out:
        follower = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.DEVNULL)
    try:
        made: list[str] = []
        deadline = time.monotonic() + 30
        while True:
            made.append(trace_id(0xF0000 + len(made)))
            rest_call(gateway.base_url, gateway.token, "node_status", trace=made[-1])
            seen = [json.loads(line).get("trace_id") for line in out_path.read_text().split("\n")[:-1]]
            if any(trace in made for trace in seen):
                break
            assert follower.poll() is None, "audit follow ended by itself"
            assert time.monotonic() < deadline, "audit follow printed none of the new records"
            time.sleep(0.2)
        assert all(trace in made for trace in seen), seen  # only new records, none from before it started
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_a_call_fails_closed_naming_the_audit_stream_when_jetstream_does_not_answer(tmp_path: Path) -> None:
    plain = start_nats(tmp_path / "plain", jetstream=False)  # NATS without JetStream: the stream cannot answer
    gateway: GatewayProc | None = None
    try:
        limits_off = {"PMCP_RATE_LIMIT": "off", "PMCP_TOOL_RATE_LIMITS": "list_vms=off",
                      "PMCP_MAX_CONCURRENT_PER_TOKEN": "0", "PMCP_STATE_TIMEOUT": "1"}
        gateway = start_gateway(plain.url, tmp_path, env=jetstream_env(1, **limits_off))
        started = time.monotonic()
        reply = rest_call(gateway.base_url, gateway.token, "list_vms")
        assert reply.status == 503 and reply.code == "unavailable", reply.body
        assert "audit stream PMCP_AUDIT on NATS JetStream" in reply.message, reply.message
        assert "within 1 s" in reply.message and time.monotonic() - started < 15
        limited = start_gateway(plain.url, tmp_path, env=jetstream_env(1, PMCP_STATE_TIMEOUT="1"))
        try:
            refused = rest_call(limited.base_url, limited.token, "list_vms")
            assert refused.code == "unavailable" and "NATS JetStream" in refused.message, refused.body
        finally:
            limited.proc.stop()
    finally:
        if gateway is not None:
            gateway.proc.stop()
        plain.proc.stop()


async def _write_records(path: Path, count: int, *, max_bytes: int = 64 * 1024 * 1024) -> None:
    log = AuditLog(path, max_bytes=max_bytes, backups=3)
    for n in range(count):
        await log.append({"ts": f"2026-03-{1 + n // 24:02d}T{n % 24:02d}:00:00.000Z", "event": "tool_call",
                          "request_id": f"r{n:03d}", "token_id": "t1" if n % 2 else "t2", "tool": "list_vms",
                          "result": "ok", "duration_ms": 1.5, "pad": "x" * 200})
    await log.close()


async def test_audit_on_the_local_file_reads_its_rotated_backups_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_records(path, 60, max_bytes=4096)
    assert (tmp_path / "audit.jsonl.1").exists() and (tmp_path / "audit.jsonl.3").exists()
    exported = cli("audit", "--file", str(path), "export", env={})
    ids = [json.loads(line)["request_id"] for line in exported.stdout.splitlines()]
    assert ids == sorted(ids) and ids[-1] == "r059" and len(ids) > 20, ids
    last = cli("audit", "--file", str(path), "show", "--last", "3", "--token", "t1", env={})
    assert [line.split("request=")[1] for line in last.stdout.splitlines()] == ["r055", "r057", "r059"]
    since = cli("audit", "--file", str(path), "export", "--since", "2026-03-03T10:00:00", env={})
    assert [json.loads(line)["request_id"] for line in since.stdout.splitlines()] == ["r058", "r059"]


async def test_audit_follow_on_the_local_file_prints_new_records_also_after_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write_records(path, 2)
    out_path = tmp_path / "follow.out"
    with open(out_path, "wb") as out:
        follower = subprocess.Popen([*CLI, "audit", "--file", str(path), "follow", "--json"],
                                    env=os.environ.copy(), stdout=out, stderr=subprocess.DEVNULL)
    try:
        log = AuditLog(path, max_bytes=4096, backups=2)
        n = 0
        deadline = time.monotonic() + 60
        while True:  # records keep coming (the file rotates every ~12) until the follower has shown 30 of them
            await log.append({"event": "tool_call", "request_id": f"new{n:03d}", "pad": "y" * 300})
            n += 1
            seen = [json.loads(line)["request_id"] for line in out_path.read_text().split("\n")[:-1]]  # whole lines
            if len(seen) >= 30:
                break
            assert time.monotonic() < deadline and follower.poll() is None, seen
            time.sleep(0.05)
        await log.close()
        # Records written before the follower was up are not new to it; from its first one on, none is missing
        # or out of order, across at least two rotations.
        first = int(seen[0].removeprefix("new"))
        assert seen == [f"new{i:03d}" for i in range(first, first + len(seen))], seen
        assert "r000" not in seen and "r001" not in seen
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_the_audit_cli_says_what_is_wrong_and_exits_2(tmp_path: Path) -> None:
    bad_since = cli("audit", "--file", str(tmp_path / "a.jsonl"), "show", "--since", "yesterday", env={})
    assert bad_since.returncode == 2 and "--since 'yesterday'" in bad_since.stderr
    bad_last = cli("audit", "--file", str(tmp_path / "a.jsonl"), "show", "--last", "-1", env={})
    assert bad_last.returncode == 2 and "--last" in bad_last.stderr
    nowhere = cli("audit", "show", env={"NATS_URL": "nats://127.0.0.1:1", **jetstream_env(1)})
    assert nowhere.returncode == 2 and "cannot connect to NATS" in nowhere.stderr
    fresh = start_nats(tmp_path / "fresh")
    try:
        missing = cli("audit", "show", env={"NATS_URL": fresh.url, **jetstream_env(1)})
        assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    finally:
        fresh.proc.stop()
