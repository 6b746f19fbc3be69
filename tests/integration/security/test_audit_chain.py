"""The tamper-evident audit log of a real gateway after real calls: `proxmox-mcp audit verify` passes on the
untouched log and names the first bad record after a removed line, an edited field, two swapped lines and the
last records cut off (caught by the anchor); the chain runs across rotations; a wrong key is named as such."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.audit_chain import AuditKey, parse_anchor

from tests.integration.security.conftest import SecureStack
from tests.support.mcp_client import http_client
from tests.support.procs import wait_until
from tests.support.services import wait_ready
from tests.support.shared_state import cli, rest_call


@dataclass
class GatewayLog:
    directory: Path
    """The gateway's state dir: audit.jsonl (+ rotated backups), audit.jsonl.anchor, audit.key."""

    @property
    def audit(self) -> Path:
        return self.directory / "audit.jsonl"

    @property
    def key(self) -> Path:
        return self.directory / "audit.key"

    def copy(self, target: Path) -> GatewayLog:
        shutil.copytree(self.directory, target, ignore=shutil.ignore_patterns("*.log", "*.lock"))
        return GatewayLog(target)


def verify(log: GatewayLog, key: Path | None = None) -> tuple[int, list[str]]:
    result = cli("audit", "--file", str(log.audit), "verify", "--key-file", str(key or log.key), env={})
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout.splitlines()


def last_seq(path: Path) -> int:
    return json.loads(path.read_text().splitlines()[-1])["seq"]


def anchored_seq(log: GatewayLog) -> int:
    key = AuditKey(log.key.read_bytes().strip())
    return parse_anchor((log.directory / "audit.jsonl.anchor").read_bytes(), {key.kid: key}).head.seq


@pytest.fixture(scope="module")
def gateway_log(stack: SecureStack) -> GatewayLog:
    """A gateway of its own (its own audit log and key) that served real calls, then stopped cleanly."""
    gateway = stack.start_gateway("chain")
    log = GatewayLog(stack.workdir / "chain")
    wait_ready(gateway)
    for tool, args in [("list_vms", {}), ("node_status", {}), ("vm_status", {"vmid": 100}),
                       ("vm_status", {"vmid": 999999}), ("list_vms", {"type": "lxc"})]:
        rest_call(gateway.base_url, gateway.token, tool, args)
    assert rest_call(gateway.base_url, "not-a-token", "list_vms").body["error"]["code"] == "unauthenticated"
    async def mcp_calls() -> None:
        async with http_client(gateway.url, stack.token(Scope.READ)) as client:
            assert not (await client.call_tool("list_vms", {})).is_error
            await client.call_tool("vm_status", {"vmid": "x"})  # refused: a bad argument, audited too

    asyncio.run(mcp_calls())
    # While the gateway runs the anchor follows the log's end within PMCP_AUDIT_ANCHOR_INTERVAL (1 s).
    wait_until(lambda: anchored_seq(log) == last_seq(log.audit), timeout=10, what="the anchor to name the head",
               proc=gateway.proc)
    gateway.proc.stop()
    return log


def test_audit_verify_passes_on_the_untouched_log_of_a_real_gateway(gateway_log: GatewayLog) -> None:
    code, out = verify(gateway_log)
    records = gateway_log.audit.read_text().splitlines()
    assert code == 0, out
    assert out[0] == f"audit log verified: {len(records)} records in 1 file(s), nothing removed, edited or reordered"
    assert any("; the log ends there" in line for line in out), out
    tools = [json.loads(line).get("tool") for line in records]
    assert tools.count("vm_status") >= 3 and "list_vms" in tools and len(records) == 8


def _without(index: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: lines[:index] + lines[index + 1:]


def _edited(index: int) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        record = lines[index]
        assert '"result":"' in record
        return [*lines[:index], record.replace('"result":"', '"result":"ok-', 1), *lines[index + 1:]]
    return edit


def _swapped(index: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: [*lines[:index], lines[index + 1], lines[index], *lines[index + 2:]]


def _cut(count: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: lines[:-count]


TAMPERING = {
    "a removed line": (_without(3), "audit.jsonl line 4: removed: seq 4 is missing here, before seq 5"),
    "an edited field": (_edited(3), "audit.jsonl line 4: edited: seq 4: its MAC does not match its content"),
    "two swapped lines": (_swapped(3), "audit.jsonl line 4: reordered: seq 5 comes before seq 4 (audit.jsonl line 5)"),
    "the last records cut off": (_cut(2), "truncated: chain {chain} ends at seq {end}, but its anchor"),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_audit_verify_names_the_first_bad_record(gateway_log: GatewayLog, tmp_path: Path, tampering: str) -> None:
    change, expected = TAMPERING[tampering]
    log = gateway_log.copy(tmp_path / "log")
    lines = log.audit.read_text().splitlines()
    log.audit.write_text("\n".join(change(lines)) + "\n")
    code, out = verify(log)
    head = json.loads(lines[-1])
    expected = expected.format(chain=head["chain"], end=head["seq"] - 2)
    assert code == 1, out
    assert out[0].startswith("audit log NOT verified: 1 problem(s)"), out
    assert out[1].strip().startswith(expected) or expected in out[1], out
    if tampering == "the last records cut off":
        assert f"records seq {head['seq'] - 1}..{head['seq']} were cut off the end" in out[1], out


def test_audit_verify_with_another_key_says_it_is_the_wrong_key(gateway_log: GatewayLog, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_text("f" * 64 + "\n")
    code, out = verify(gateway_log, other)
    assert code == 1 and "wrong key: the records were sealed with key id" in "\n".join(out), out
    kid = AuditKey(gateway_log.key.read_bytes().strip()).kid
    assert kid in out[1] and AuditKey(b"f" * 64).kid in out[1], out


def test_a_gateway_anchors_its_last_record_when_it_stops(stack: SecureStack) -> None:
    gateway = stack.start_gateway("chain-stopping", env={"PMCP_AUDIT_ANCHOR_INTERVAL": "3600"})
    log = GatewayLog(stack.workdir / "chain-stopping")
    for _ in range(3):
        rest_call(gateway.base_url, gateway.token, "node_status")
    wait_until(lambda: anchored_seq(log) == 1, timeout=10, what="the chain's start anchored", proc=gateway.proc)
    assert last_seq(log.audit) == 3 and anchored_seq(log) == 1  # an hour's interval: not anchored yet
    gateway.proc.stop()
    assert anchored_seq(log) == 3
    # without --file: the gateway's own settings name the log, its key and its anchor
    settled = cli("audit", "verify", env={"PMCP_STATE_DIR": str(log.directory), "PMCP_STATE": "local"})
    assert settled.returncode == 0 and settled.stdout.startswith("audit log verified: 3 records"), settled.stdout


def test_audit_verify_says_what_it_cannot_check_and_exits_2(tmp_path: Path) -> None:
    no_key = cli("audit", "--file", str(tmp_path / "audit.jsonl"), "verify", "--key-file", str(tmp_path / "k"),
                 env={})
    assert no_key.returncode == 2 and f"audit key file {tmp_path / 'k'} does not exist" in no_key.stderr
    key = tmp_path / "audit.key"
    key.write_text("s" * 40)
    no_log = cli("audit", "--file", str(tmp_path / "audit.jsonl"), "verify", "--key-file", str(key), env={})
    assert no_log.returncode == 2 and "there is no audit file" in no_log.stderr, no_log.stderr
    short = tmp_path / "short.key"
    short.write_text("s" * 8)
    too_short = cli("audit", "--file", str(tmp_path / "audit.jsonl"), "verify", "--key-file", str(short), env={})
    assert too_short.returncode == 2 and "a key needs at least 32" in too_short.stderr
    assert "ssssssss" not in too_short.stderr + too_short.stdout


def test_the_chain_runs_across_a_real_gateways_rotations(stack: SecureStack, tmp_path: Path) -> None:
    gateway = stack.start_gateway("chain-rotating", env={"PMCP_AUDIT_MAX_BYTES": "4096",
                                                         "PMCP_AUDIT_BACKUPS": "2"})
    log = GatewayLog(stack.workdir / "chain-rotating")
    wait_ready(gateway)
    calls = 0
    # until a rotation has dropped the oldest file: the chain then begins in the middle (seq > 1)
    while not ((log.directory / "audit.jsonl.2").exists()
               and json.loads((log.directory / "audit.jsonl.2").read_text().splitlines()[0])["seq"] > 1):
        rest_call(gateway.base_url, gateway.token, "vm_status", {"vmid": 100})
        calls += 1
        assert calls < 200, "the audit log never rotated twice"
    gateway.proc.stop()
    code, out = verify(log)
    assert code == 0 and "in 3 file(s) (audit.jsonl.2 .. audit.jsonl)" in out[0], out
    assert any("were rotated away" in line for line in out), out
    tampered = log.copy(tmp_path / "log")
    middle = tampered.directory / "audit.jsonl.1"
    lines = middle.read_text().splitlines()
    middle.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    code, out = verify(tampered)
    assert code == 1 and out[1].strip().startswith("audit.jsonl.1 line 2: removed: seq"), out
