"""operator and admin: lifecycle and configuration commands, their scopes and destructive flags."""

from __future__ import annotations

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_runtime.command_policy import evaluate_command

LIFECYCLE: tuple[tuple[str, bool], ...] = (
    ("qm start 100", False),
    ("qm start 100 --timeout 60", False),
    ("qm stop 100", True),
    ("qm shutdown 100 --forceStop 1 --timeout 120", True),
    ("qm reboot 100", True),
    ("qm reset 100", True),
    ("qm suspend 100", False),
    ("qm resume 100", False),
    ("qm snapshot 100 before-upgrade --description 'before the upgrade'", False),
    ("pct start 200", False),
    ("pct stop 200", True),
    ("pct shutdown 200", True),
    ("pct reboot 200", True),
    ("pct suspend 200", False),
    ("pct resume 200", False),
    ("pct snapshot 200 snap1", False),
    ("/usr/sbin/qm stop 100", True),
)

ADMIN_ONLY: tuple[str, ...] = (
    "qm destroy 100 --purge",
    "qm rollback 100 snap1",
    "qm delsnapshot 100 snap1",
    "qm set 100 --memory 4096 --name web-1",
    "pct set 200 --cores 2",
    "pct rollback 200 snap1",
    "pct destroy 200",
    "pvesh create /nodes/pve/qemu/100/status/stop",
    "pvesh set /nodes/pve/qemu/100/config --memory 2048",
    "pvesh delete /nodes/pve/qemu/100/snapshot/snap1",
    "systemctl restart pveproxy",
    "systemctl reload pvedaemon pveproxy",
)


@pytest.mark.parametrize(("command", "destructive"), LIFECYCLE, ids=[c for c, _ in LIFECYCLE])
def test_guest_lifecycle_commands_are_allowed_from_the_operator_profile_up(command: str, destructive: bool) -> None:
    refused = evaluate_command(command, "readonly")
    assert not refused.allowed
    assert "operator" in refused.reason
    for profile in ("operator", "admin"):
        decision = evaluate_command(command, profile)
        assert decision.allowed, decision.reason
        assert decision.required_scope is Scope.OPERATE
        assert decision.destructive is destructive


@pytest.mark.parametrize("command", ADMIN_ONLY)
def test_configuration_changes_need_admin(command: str) -> None:
    for profile in ("readonly", "operator"):
        decision = evaluate_command(command, profile)
        assert not decision.allowed, (profile, command)
        assert "admin" in decision.reason
    decision = evaluate_command(command, "admin")
    assert decision.allowed, decision.reason
    assert decision.required_scope is Scope.ADMIN
    assert decision.destructive


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("qm stop", "at least 1 operand"),
        ("qm stop 99", "between 100 and"),
        ("qm stop 100 101", "too many operands"),
        ("qm stop 100 --skiplock", "--skiplock is not allowed"),
        ("qm start 100 --timeout=-1", "between 0 and 3600"),
        ("qm snapshot 100 'bad name'", "simple name"),
        ("systemctl restart sshd", "must be one of"),
        ("systemctl stop 'pveproxy;reboot'", "must be one of"),
    ],
)
def test_operator_and_admin_arguments_are_still_checked(command: str, reason: str) -> None:
    decision = evaluate_command(command, "admin")
    assert not decision.allowed
    assert reason in decision.reason, decision.reason


def test_pvesh_access_paths_are_admin_only_even_for_reading() -> None:
    assert not evaluate_command("pvesh get /access/users", "readonly").allowed
    assert not evaluate_command("pvesh get /access/users", "operator").allowed
    decision = evaluate_command("pvesh get /access/users", "admin")
    assert decision.allowed
    assert decision.required_scope is Scope.ADMIN
    assert not decision.destructive
    assert not evaluate_command("pvesh get /access/ticket", "admin").allowed


def test_pvesh_parameters_cannot_hide_options_from_the_check() -> None:
    refused = [
        "pvesh set /nodes/pve/qemu/100/config --description --args",
        "pvesh set /nodes/pve/qemu/100/config --force -hookscript x",
        "pvesh set /nodes/pve/qemu/100/config --args=-x",
        "pvesh set /nodes/pve/qemu/100/config --hooks x",
        "pvesh set /nodes/pve/qemu/100/config stray",
    ]
    for command in refused:
        assert not evaluate_command(command, "admin").allowed, command
    assert evaluate_command("pvesh set /nodes/pve/qemu/100/config --agent 1 --onboot 1", "admin").allowed


def test_unknown_profile_is_refused_with_the_known_names() -> None:
    decision = evaluate_command("qm list", "nosuch")
    assert not decision.allowed
    assert "unknown command profile 'nosuch'" in decision.reason
    assert "readonly" in decision.reason
