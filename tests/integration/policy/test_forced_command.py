"""Against a real sshd: the argv the host runs is exactly the argv the policy approved, and the shipped
forced-command dispatcher refuses what the policy refuses (sent raw, bypassing every client-side check)."""

from __future__ import annotations

import json
import secrets
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from proxmox_mcp_runtime.command_policy import evaluate_command
from proxmox_mcp_runtime.ssh.command import command_line

from tests.integration.policy.conftest import SHIPPED, ForcedSshd
from tests.unit.runtime.command_policy.attack_table import ATTACKS

ALLOWED = (
    "echo 'quoted  with   spaces' \"double 'inner'\" plain",
    "echo '*' '$HOME' '`id`' '; id' '|'",
    "stat -c '%n has %s bytes' /etc/hostname",
    "grep -c 'root:x:0' /etc/passwd",
    "find /etc -maxdepth 1 -name 'host*'",
    "date -u '+%Y-%m-%d %H:%M'",
    "uname -a",
    "whoami",
    "id",
    "cat /proc/loadavg",
    "ls -la /etc",
    "df -h /",
    "head -n 1 /etc/os-release",
    "seq 1 3",
)


class Remote:
    def __init__(self, sshd: ForcedSshd, key: Path) -> None:
        server = sshd.server
        self.sshd = sshd
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(str(server.known_hosts))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        sock = socket.create_connection((server.host, server.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paramiko never sets it (FACTS.md)
        self.client.connect(
            server.host,
            port=server.port,
            username=server.user,
            key_filename=str(key),
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
            sock=sock,
        )

    def run(self, line: str) -> tuple[int, str, str]:
        _, stdout, stderr = self.client.exec_command(line, timeout=15)
        status = stdout.channel.recv_exit_status()
        return status, stdout.read().decode(), stderr.read().decode()

    def last_record(self) -> dict[str, Any]:
        return json.loads(self.sshd.log.read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def forced(forced_sshd: ForcedSshd) -> Iterator[Remote]:
    remote = Remote(forced_sshd, forced_sshd.server.ed25519_key)
    try:
        yield remote
    finally:
        remote.client.close()


def test_the_installed_dispatcher_is_the_shipped_artifact(forced_sshd: ForcedSshd) -> None:
    assert forced_sshd.dispatcher.read_bytes() == SHIPPED.read_bytes()


@pytest.mark.parametrize("command", ALLOWED)
def test_host_runs_exactly_the_approved_argv(forced: Remote, command: str) -> None:
    decision = evaluate_command(command, "readonly")
    assert decision.allowed, decision.reason
    status, stdout, stderr = forced.run(shlex.join(decision.argv))
    assert status == 0, stderr
    record = forced.last_record()
    assert record["allowed"] is True
    assert record["argv"] == decision.argv
    assert record["exec"] == decision.argv
    assert stdout


def test_arguments_arrive_unexpanded(forced: Remote) -> None:
    decision = evaluate_command("echo 'quoted  with   spaces' '*' '$HOME' '`id`'", "readonly")
    _, stdout, _ = forced.run(shlex.join(decision.argv))
    assert stdout == "quoted  with   spaces * $HOME `id`\n"


def test_the_workers_timeout_wrapped_line_runs_the_same_argv(forced: Remote) -> None:
    decision = evaluate_command("echo 'a b' c", "readonly")
    status, stdout, _ = forced.run(command_line(decision.argv, timeout=5, wrap=True, kill_after=2))
    assert (status, stdout) == (0, "a b c\n")
    record = forced.last_record()
    assert record["argv"] == decision.argv
    assert record["exec"] == ["timeout", "--signal=TERM", "--kill-after=2", "6", *decision.argv]


def test_program_paths_are_canonicalised_on_the_host(forced: Remote) -> None:
    status, stdout, _ = forced.run("/usr/bin/id -u")
    assert status == 0 and stdout.strip().isdigit()
    assert forced.last_record()["exec"] == ["id", "-u"]


SENDABLE = [a for a in ATTACKS if "\x00" not in a.command]


def test_every_sent_attack_is_refused_by_the_dispatcher(forced: Remote) -> None:
    for attack in SENDABLE[3::6]:  # the unit suite sends ATTACKS[::6] through the same script
        status, stdout, stderr = forced.run(attack.command)
        assert status == 126, attack.command
        assert stdout == ""
        assert "pmcp-dispatch: refused by policy:" in stderr and attack.reason in stderr, (attack.command, stderr)
        record = forced.last_record()
        assert record["allowed"] is False
        assert record["command"] == attack.command


def test_side_effects_happen_only_without_the_forced_command(forced_sshd: ForcedSshd, forced: Remote) -> None:
    canary = Path("/tmp") / f"pmcp-canary-{secrets.token_hex(6)}"
    try:
        for line in (
            f"echo x; touch {canary}",
            f"echo $(touch {canary})",
            f"touch {canary}",
            f"id && touch {canary}",
            f"echo x\ntouch {canary}",
        ):
            status, _, _ = forced.run(line)
            assert status == 126, line
            assert not canary.exists(), line
        control = Remote(forced_sshd, forced_sshd.server.rsa_key)  # same user, no forced command
        try:
            status, _, _ = control.run(f"touch {canary}")
        finally:
            control.client.close()
        assert status == 0 and canary.exists(), "the control key should have been able to create the canary"
    finally:
        canary.unlink(missing_ok=True)


def test_interactive_shell_is_refused(forced: Remote) -> None:
    transport = forced.client.get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    try:
        channel.invoke_shell()
        status = channel.recv_exit_status()
        stderr = b""
        while channel.recv_stderr_ready() or not channel.exit_status_ready():
            stderr += channel.recv_stderr(4096)
        stderr += channel.recv_stderr(4096)
        assert status == 126
        assert b"interactive sessions are not allowed" in stderr
    finally:
        channel.close()
