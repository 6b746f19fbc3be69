"""Every hostile command of the attack table is refused under the default profile, with a reason that says why."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.command_policy import evaluate_command

from tests.unit.runtime.command_policy.attack_table import ATTACKS, NEVER_EVEN_FOR_ADMIN, Attack

TYPED_TOOL_EQUIVALENTS = {
    "qm stop 100",
    "qm destroy 100",
    "pct destroy 100 --purge",
    "pvesh delete /nodes/pve/qemu/100",
    "pvesh create /nodes/pve/qemu/100/status/stop",
    "systemctl start pveproxy",
}
"""Attacks under readonly that a higher profile may run on purpose (tested in test_builtin.py)."""


def test_table_is_big_and_covers_every_category() -> None:
    assert len(ATTACKS) >= 80
    assert len({a.command for a in ATTACKS}) == len(ATTACKS), "duplicate commands in the attack table"
    categories = {a.category for a in ATTACKS}
    assert categories >= {
        "separator",
        "substitution",
        "expansion",
        "glob",
        "quoting",
        "path",
        "alias",
        "injection",
        "interpreter",
        "encoded",
        "environment",
        "exhaustion",
        "secret",
        "unicode",
        "destructive",
    }


@pytest.mark.parametrize("attack", ATTACKS, ids=[f"{a.category}:{a.command[:40]!r}" for a in ATTACKS])
def test_every_attack_is_refused_under_readonly_with_its_reason(attack: Attack) -> None:
    decision = evaluate_command(attack.command, "readonly")
    assert not decision.allowed
    assert decision.argv == []
    assert not decision.destructive
    assert attack.reason in decision.reason, decision.reason


@pytest.mark.parametrize("profile", ["operator", "admin"])
def test_higher_profiles_refuse_every_attack_but_the_typed_tool_equivalents(profile: str) -> None:
    wrongly_allowed = [
        a.command
        for a in ATTACKS
        if a.command not in TYPED_TOOL_EQUIVALENTS and evaluate_command(a.command, profile).allowed
    ]
    assert wrongly_allowed == []


@pytest.mark.parametrize("command", NEVER_EVEN_FOR_ADMIN)
def test_admin_still_refuses_wipers_bombs_interpreters_and_secrets(command: str) -> None:
    for profile in ("operator", "admin"):
        decision = evaluate_command(command, profile)
        assert not decision.allowed, (profile, command)
        assert decision.reason


def test_refusal_never_raises_for_garbage() -> None:
    for command in ["", " ", "'", '"', "\\", "x" * 5000, " ".join(["a"] * 200), "\udcff", "a\ud800b", "\x7f"]:
        decision = evaluate_command(command, "readonly")
        assert not decision.allowed
        assert decision.reason
