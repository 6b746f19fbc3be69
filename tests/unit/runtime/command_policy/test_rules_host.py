"""The readonly profile's host-health programs (Ceph, SMART, corosync, bridges, logins, time sync, sampling):
every program has allowed examples and attack tests, the sampling bounds hold at their edges, and the programs
that only print secrets stay refused even where a profile adds them."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.command_policy import evaluate_command, load_profiles
from proxmox_mcp_runtime.command_policy.checkers import MAX_SAMPLE_INTERVAL, MAX_SAMPLES
from proxmox_mcp_runtime.command_policy.rules_host import HOST_RULES

from tests.unit.runtime.command_policy.allowed_table import ALLOWED_READONLY
from tests.unit.runtime.command_policy.attack_table import ATTACKS

HOST_PROGRAMS = sorted({r.program for r in HOST_RULES})
NOTHING_TO_ATTACK = {"w"}
"""w reads utmp and /proc only: it has no option that changes state or names a file."""


@pytest.mark.parametrize("program", HOST_PROGRAMS)
def test_every_host_health_program_has_allowed_examples_and_attacks(program: str) -> None:
    assert any(argv[0] == program for _, argv in ALLOWED_READONLY), f"no allowed example runs {program}"
    if program not in NOTHING_TO_ATTACK:
        assert any(a.command.split()[0] == program for a in ATTACKS), f"no attack test for {program}"


@pytest.mark.parametrize(
    "command",
    [
        f"vmstat {MAX_SAMPLE_INTERVAL} {MAX_SAMPLES}",
        "vmstat 1 1",
        "iostat -x 1 1",
        f"mpstat {MAX_SAMPLE_INTERVAL} 1",
        "zpool iostat rpool sda 1 1",
    ],
)
def test_sampling_at_the_bounds_is_allowed(command: str) -> None:
    decision = evaluate_command(command, "readonly")
    assert decision.allowed, decision.reason


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (f"vmstat {MAX_SAMPLE_INTERVAL + 1} 1", f"between 1 and {MAX_SAMPLE_INTERVAL} seconds"),
        (f"vmstat 1 {MAX_SAMPLES + 1}", f"between 1 and {MAX_SAMPLES}, got {MAX_SAMPLES + 1}"),
        ("vmstat 0 1", "between 1 and"),
        ("vmstat 1 0", "between 1 and"),
        ("vmstat 1 2 3", "too many operands"),
        ("iostat 1 2 3", "at most an interval and a count"),
        ("zpool status 5 2 rpool", "operand 'rpool' after the interval is not allowed"),
        ("iostat 1 sda 2", "operand 'sda' after the interval is not allowed"),
    ],
)
def test_sampling_beyond_the_bounds_is_refused(command: str, reason: str) -> None:
    decision = evaluate_command(command, "readonly")
    assert not decision.allowed
    assert reason in decision.reason, decision.reason


def test_smartctl_scan_takes_no_device_and_a_read_takes_exactly_one() -> None:
    assert not evaluate_command("smartctl --scan /dev/sda", "readonly").allowed
    assert "exactly one device" in evaluate_command("smartctl -H", "readonly").reason
    assert evaluate_command("smartctl -H /dev/disk/by-id/nvme-X", "readonly").allowed


def test_lvm_reports_keep_every_column_but_the_tags() -> None:
    assert evaluate_command("lvs -o +lv_uuid,lv_attr --units g", "readonly").allowed
    assert evaluate_command("vgs --options vg_name,vg_free", "readonly").allowed
    for field in ("vg_tags", "pv_tags", "seg_all", "lv_all"):
        decision = evaluate_command(f"pvs -o pv_name,{field}", "readonly")
        assert not decision.allowed and f"report field {field!r} is refused" in decision.reason


@pytest.mark.parametrize("profile", ["readonly", "operator", "admin"])
def test_failed_logins_and_ceph_keys_stay_refused_in_every_builtin_profile(profile: str) -> None:
    for command in ("lastb", "ceph auth get client.admin", "ceph config-key dump", "ceph-authtool -l /tmp/k"):
        assert not evaluate_command(command, profile).allowed, (profile, command)


def test_a_configured_profile_cannot_add_lastb_or_ceph_auth_without_the_dangerous_opt_in() -> None:
    profiles = load_profiles(
        {
            "profiles": {
                "audit": {
                    "extends": ["readonly"],
                    "rules": [{"program": "lastb"}, {"program": "ceph", "subcommand": "auth ls"}],
                }
            }
        }
    )
    for command in ("lastb", "ceph auth ls"):
        decision = evaluate_command(command, "audit", extra_profiles=profiles)
        assert not decision.allowed
        assert "explicitly allows dangerous commands" in decision.reason
