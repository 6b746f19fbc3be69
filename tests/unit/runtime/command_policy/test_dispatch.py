"""The forced-command dispatcher refuses exactly what the policy refuses. Runs the exact artifact
(deploy/host/pmcp-dispatch, a fresh build: test_bundle.py) as a process."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_runtime.command_policy import evaluate_command, with_sudo
from proxmox_mcp_runtime.command_policy.dispatch import SAFE_PATH, main

from tests.support.procs import REPO_ROOT, missing_prerequisite
from tests.unit.runtime.command_policy.attack_table import ATTACKS

SHIPPED = REPO_ROOT / "deploy" / "host" / "pmcp-dispatch"
HOST_PYTHON = Path("/usr/bin/python3")


def run_shipped(command: str | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not HOST_PYTHON.exists():
        missing_prerequisite("the dispatcher's interpreter /usr/bin/python3 is not installed")
    environ = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": "", **(env or {})}
    if command is not None:
        environ["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run([str(SHIPPED), *args], env=environ, capture_output=True, text=True, timeout=20)


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_allowed_command_runs_with_exact_argument_boundaries(tmp_path: Path) -> None:
    log = tmp_path / "dispatch.log"
    result = run_shipped("echo 'a  b' \"c'd\" e", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a  b c'd e\n"
    (record,) = read_log(log)
    assert record["allowed"] is True
    assert record["argv"] == record["exec"] == ["echo", "a  b", "c'd", "e"]
    assert record["command"] == "echo 'a  b' \"c'd\" e"


def test_refused_command_exits_126_with_the_reason_and_runs_nothing(tmp_path: Path) -> None:
    log = tmp_path / "dispatch.log"
    canary = tmp_path / "canary"
    result = run_shipped(f"echo x; touch {canary}", "--log", str(log))
    assert result.returncode == 126
    assert result.stdout == ""
    assert "pmcp-dispatch: refused by policy: shell command separator ';'" in result.stderr
    assert not canary.exists()
    (record,) = read_log(log)
    assert record["allowed"] is False
    assert "';'" in record["reason"]


def test_interactive_session_is_refused() -> None:
    result = run_shipped(None)
    assert result.returncode == 126
    assert "interactive sessions are not allowed" in result.stderr


def test_the_ssh_workers_timeout_wrapper_is_reapplied(tmp_path: Path) -> None:
    log = tmp_path / "dispatch.log"
    result = run_shipped("exec timeout --signal=TERM --kill-after=2 5 echo 'x y'", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "x y\n"
    (record,) = read_log(log)
    assert record["argv"] == ["echo", "x y"]
    assert record["exec"] == ["timeout", "--signal=TERM", "--kill-after=2", "5", "echo", "x y"]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("exec timeout --signal=TERM --kill-after=2 99999 echo x", "longer than the maximum"),
        ("exec timeout --signal=TERM --kill-after=2 5 rm -rf /", "rm destroys"),
        ("exec timeout --signal=TERM --kill-after=2 5 echo x; id", "';'"),
        ("exec timeout --kill-after=2 5 echo x", "exec runs another program"),
        ("timeout 5 echo x", "timeout runs another program"),
    ],
)
def test_wrapper_forms_are_strict(command: str, reason: str) -> None:
    result = run_shipped(command)
    assert result.returncode == 126
    assert reason in result.stderr


def test_symlink_to_a_secret_is_refused_on_the_host(tmp_path: Path) -> None:
    link = tmp_path / "notes.txt"
    link.symlink_to("/etc/shadow")
    assert evaluate_command(f"cat {link}", "readonly").allowed  # the worker cannot see the host's files
    result = run_shipped(f"cat {link}")
    assert result.returncode == 126
    assert "resolves to /etc/shadow" in result.stderr


def test_unwritable_log_fails_closed(tmp_path: Path) -> None:
    result = run_shipped("echo hi", "--log", str(tmp_path / "missing-dir" / "log"))
    assert result.returncode == 126
    assert result.stdout == ""
    assert "cannot write the log" in result.stderr


def test_the_dispatcher_loads_a_profiles_file_and_refuses_to_run_with_a_bad_one(tmp_path: Path) -> None:
    config = tmp_path / "profiles.toml"
    config.write_text('[profiles.tiny]\nrules = [{ program = "echo", positionals = ["word"], max_positionals = 1 }]\n')
    assert run_shipped("echo ok", "--profiles-file", str(config), "--profile", "tiny").stdout == "ok\n"
    refused = run_shipped("uname -a", "--profiles-file", str(config), "--profile", "tiny")
    assert refused.returncode == 126
    assert "not allowed in profile tiny" in refused.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"profiles": {"x": {"rules": [{"program": "ls", "scope": "god"}]}}}')
    result = run_shipped("echo ok", "--profiles-file", str(bad))
    assert result.returncode == 126
    assert "cannot load profiles file" in result.stderr and "scope" in result.stderr


SAMPLE = ATTACKS[::6]


def test_shipped_dispatcher_refuses_what_the_policy_refuses() -> None:
    for attack in SAMPLE:
        if "\x00" in attack.command:
            continue  # an environment variable cannot carry NUL; sshd could not deliver it either
        result = run_shipped(attack.command)
        assert result.returncode == 126, attack.command
        assert attack.reason in result.stderr, (attack.command, result.stderr)
        assert result.stdout == ""


class FakeExec:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []

    def __call__(self, file: str, argv: list[str], env: dict[str, str]) -> None:
        self.calls.append((file, argv, env))


def test_sudo_programs_run_by_absolute_path_with_a_clean_environment() -> None:
    fake = FakeExec()
    environ = {
        "SSH_ORIGINAL_COMMAND": "exec timeout --signal=TERM --kill-after=2 31 echo 'a b'",
        "LD_PRELOAD": "/tmp/evil.so",
        "PATH": "/tmp:/usr/bin",
        "HOME": "/home/pmcp",
        "LC_ALL": "C.UTF-8",
    }
    assert main(["--sudo", "echo,qm"], environ, fake) == 0
    ((file, argv, env),) = fake.calls
    echo = next(p for p in (Path(d) / "echo" for d in SAFE_PATH.split(":")) if p.exists())
    assert argv == ["timeout", "--signal=TERM", "--kill-after=2", "31", "sudo", "-n", "--", str(echo), "a b"]
    assert file == "timeout"
    assert env == {"PATH": SAFE_PATH, "HOME": "/home/pmcp", "LC_ALL": "C.UTF-8"}


def test_a_client_sudo_prefix_is_stripped_and_the_hosts_sudo_list_decides() -> None:
    argv = with_sudo(["echo", "x y"], {"echo"})
    assert argv == ["sudo", "-n", "--", "echo", "x y"]
    assert with_sudo(["id"], {"echo"}) == ["id"]
    fake = FakeExec()
    assert main([], {"SSH_ORIGINAL_COMMAND": shlex.join(argv)}, fake) == 0
    assert fake.calls[0][1] == ["echo", "x y"]
    fake = FakeExec()
    assert main(["--sudo", "echo"], {"SSH_ORIGINAL_COMMAND": "sudo -n -- /usr/bin/echo ok"}, fake) == 0
    assert fake.calls[0][1][:3] == ["sudo", "-n", "--"] and fake.calls[0][1][-1] == "ok"
    for smuggled in ("sudo -n -- sudo -n -- echo x", "sudo -n -- rm -rf /", "sudo -u root echo x", "sudo echo x"):
        assert main([], {"SSH_ORIGINAL_COMMAND": smuggled}, FakeExec()) == 126, smuggled


def test_the_dispatcher_runs_exactly_the_argv_the_worker_sends() -> None:
    """The worker sends shlex.join(decision.argv); the dispatcher must approve and exec that same argv."""
    for command in ["echo 'it'\"'\"'s' \"a b\"", "grep -e 'x|y' /etc/hosts", "qm status 100"]:
        decision = evaluate_command(command, "readonly")
        assert decision.allowed
        fake = FakeExec()
        assert main([], {"SSH_ORIGINAL_COMMAND": shlex.join(decision.argv)}, fake) == 0
        assert fake.calls[0][1] == decision.argv
