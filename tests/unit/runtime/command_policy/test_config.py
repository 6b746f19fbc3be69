"""Profiles from configuration: format, inheritance, the dangerous opt-in, and clear errors for bad input."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_runtime.command_policy import ProfileConfigError, evaluate_command, load_profiles

EXAMPLE_TOML = """
[profiles.ops]
extends = ["operator"]
remove = ["qm reset", "pct"]
max_sleep = 10
description = "operators of cluster A"

[[profiles.ops.rules]]
program = "qm"
subcommand = "migrate"
positionals = ["vmid", "name"]
min_positionals = 2
flags = ["--online"]
options = { "--targetstorage" = "name" }
scope = "operate"
destructive = true

[profiles.breakglass]
extends = "admin"
allow_dangerous = true

[[profiles.breakglass.rules]]
program = "rm"
positionals = ["path"]
min_positionals = 1
max_positionals = 4
short_flags = "f"
scope = "admin"
destructive = true
dangerous = true
"""


def test_toml_profiles_extend_remove_and_add_rules() -> None:
    profiles = load_profiles(tomllib.loads(EXAMPLE_TOML))
    assert set(profiles) == {"ops", "breakglass"}
    decision = evaluate_command("qm migrate 100 pve2 --online", "ops", extra_profiles=profiles)
    assert decision.allowed, decision.reason
    assert decision.required_scope is Scope.OPERATE
    assert decision.destructive
    assert evaluate_command("qm stop 100", "ops", extra_profiles=profiles).allowed
    assert not evaluate_command("qm reset 100", "ops", extra_profiles=profiles).allowed
    assert not evaluate_command("pct list", "ops", extra_profiles=profiles).allowed
    assert not evaluate_command("sleep 11", "ops", extra_profiles=profiles).allowed
    assert evaluate_command("sleep 10", "ops", extra_profiles=profiles).allowed
    assert evaluate_command("qm list", "readonly", extra_profiles=profiles).allowed


def test_dangerous_rules_need_both_opt_ins() -> None:
    profiles = load_profiles(tomllib.loads(EXAMPLE_TOML))
    decision = evaluate_command("rm -f /var/tmp/stale.lock", "breakglass", extra_profiles=profiles)
    assert decision.allowed, decision.reason
    assert decision.destructive
    assert not evaluate_command("rm -f /etc/pve/priv/authkey.key", "breakglass", extra_profiles=profiles).allowed
    assert not evaluate_command("rm -rf /var/tmp", "breakglass", extra_profiles=profiles).allowed

    without_profile_opt_in = load_profiles(
        {"p": {"rules": [{"program": "rm", "positionals": ["path"], "max_positionals": 1, "dangerous": True}]}}
    )
    decision = evaluate_command("rm /var/tmp/x", "p", extra_profiles=without_profile_opt_in)
    assert not decision.allowed
    assert "dangerous" in decision.reason

    without_rule_opt_in = load_profiles(
        {"p": {"allow_dangerous": True, "rules": [{"program": "rm", "positionals": ["path"], "max_positionals": 1}]}}
    )
    decision = evaluate_command("rm /var/tmp/x", "p", extra_profiles=without_rule_opt_in)
    assert not decision.allowed
    assert "rm destroys" in decision.reason


def test_json_with_or_without_the_profiles_key_and_overriding_a_builtin() -> None:
    data = {"readonly": {"extends": ["readonly"], "remove": ["cat"]}}
    for config in (data, {"profiles": data}):
        profiles = load_profiles(json.loads(json.dumps(config)))
        assert not evaluate_command("cat /proc/loadavg", "readonly", extra_profiles=profiles).allowed
        assert evaluate_command("qm list", "readonly", extra_profiles=profiles).allowed
    assert evaluate_command("cat /proc/loadavg", "readonly").allowed


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"p": {"rules": [{"program": "ls", "bogus": 1}]}}, "profiles.p.rules[0]: unknown key(s) bogus"),
        ({"p": {"colour": "red"}}, "profiles.p: unknown key(s) colour"),
        ({"p": {"rules": [{"program": "/bin/ls"}]}}, "profiles.p.rules[0].program"),
        ({"p": {"rules": [{"program": "ls", "positionals": ["paths"]}]}}, "unknown value kind 'paths'"),
        ({"p": {"rules": [{"program": "ls", "options": {"-n": "int:5"}}]}}, "int:MIN:MAX"),
        ({"p": {"rules": [{"program": "ls", "options": {"-n": "int:9:1"}}]}}, "MIN > MAX"),
        ({"p": {"rules": [{"program": "ls", "options": {"-n": "regex:(["}}]}}, "bad regex"),
        ({"p": {"rules": [{"program": "ls", "options": {"n": "int"}}]}}, "is not an option name"),
        ({"p": {"rules": [{"program": "ls", "scope": "root"}]}}, "scope: must be one of"),
        ({"p": {"rules": [{"program": "ls", "check": "magic"}]}}, "unknown checker 'magic'"),
        ({"p": {"rules": [{"program": "ls", "dangerous": "yes"}]}}, "dangerous: expected true or false"),
        ({"p": {"rules": [{"program": "ls", "max_positionals": 1000}]}}, "max_positionals"),
        ({"p": {"rules": {"program": "ls"}}}, "rules: expected a list"),
        ({"p": {"extends": ["nosuch"]}}, "unknown profile 'nosuch'"),
        ({"a": {"extends": "b"}, "b": {"extends": "a"}}, "extends cycle"),
        ({"p": {"remove": "qm"}}, "remove: expected a list"),
        ({"p": {"max_sleep": -1}}, "max_sleep"),
        ({"bad name": {}}, "bad profile name"),
        ({"profiles": []}, "expected a table"),
    ],
)
def test_bad_configuration_is_refused_with_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileConfigError) as info:
        load_profiles(config)
    assert message in str(info.value)
