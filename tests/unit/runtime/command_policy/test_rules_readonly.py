"""Legitimate inspection commands are allowed under readonly with exactly the expected argv."""

from __future__ import annotations

import shlex

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_runtime.command_policy import PROFILES, evaluate_command

from tests.unit.runtime.command_policy.allowed_table import ALLOWED_READONLY


def test_table_is_big_enough() -> None:
    assert len(ALLOWED_READONLY) >= 35
    assert set(PROFILES) == {"readonly", "operator", "admin"}


@pytest.mark.parametrize(("command", "argv"), ALLOWED_READONLY, ids=[c for c, _ in ALLOWED_READONLY])
def test_each_inspection_command_is_allowed_under_readonly_with_its_exact_argv(command: str, argv: list[str]) -> None:
    decision = evaluate_command(command, "readonly")
    assert decision.allowed, decision.reason
    assert decision.argv == argv
    assert decision.required_scope is Scope.READ
    assert not decision.destructive
    assert decision.profile == "readonly"
    assert decision.reason.startswith("matched rule ")


@pytest.mark.parametrize(("command", "argv"), ALLOWED_READONLY, ids=[c for c, _ in ALLOWED_READONLY])
def test_what_is_sent_round_trips(command: str, argv: list[str]) -> None:
    """The worker sends shlex.join(argv): a shell splits it back to argv, and the host-side dispatcher (same
    policy) approves the same argv again."""
    line = shlex.join(argv)
    assert shlex.split(line) == argv
    again = evaluate_command(line, "readonly")
    assert again.allowed, again.reason
    assert again.argv == argv


@pytest.mark.parametrize("profile", ["operator", "admin"])
def test_higher_profiles_include_readonly(profile: str) -> None:
    for command, argv in ALLOWED_READONLY:
        decision = evaluate_command(command, profile)
        assert decision.allowed, (command, decision.reason)
        assert decision.argv == argv
