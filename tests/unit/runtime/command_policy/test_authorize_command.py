"""The one command check of the gateway and both workers (authorize_command), and the one reader of the extra
profiles file they are all given (PMCP_COMMAND_PROFILES)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.command_policy import (
    PROFILES_ENV,
    ProfileConfigError,
    ProfileSpec,
    authorize_command,
    load_configured_profiles,
    load_profiles_file,
)

TINY_TOML = '[profiles.tiny]\n[[profiles.tiny.rules]]\nprogram = "hostname"\n'
TINY_JSON = json.dumps({"profiles": {"tiny": {"rules": [{"program": "hostname"}]}}})


def caller(scope: Scope = Scope.EXEC, profile: str = "readonly") -> Caller:
    return Caller(token_id="t", scope=scope, command_profile=profile)


def refusal(command: str, who: Caller, *, extra_profiles: Mapping[str, ProfileSpec] | None = None,
            scope: Scope | None = None) -> ServiceFailure:
    with pytest.raises(ServiceFailure) as caught:
        authorize_command(command, who, extra_profiles=extra_profiles, scope=scope)
    return caught.value


def test_an_allowed_command_gives_the_argv_and_what_the_audit_needs() -> None:
    decision = authorize_command("uname -a", caller())
    assert decision.argv == ["uname", "-a"]
    assert decision.profile == "readonly" and "matched rule" in decision.reason
    assert decision.required_scope is Scope.EXEC and decision.destructive is False


def test_a_command_of_an_operate_tool_still_needs_exec_scope_and_says_what_it_needs() -> None:
    decision = authorize_command("qm stop 100", caller(Scope.EXEC, "operator"))
    assert decision.required_scope is Scope.EXEC and decision.destructive is True
    assert authorize_command("qm list", caller(Scope.ADMIN, "admin")).required_scope is Scope.EXEC


@pytest.mark.parametrize("command, scope, code", [
    ("rm -rf /", Scope.ADMIN, ErrorCode.POLICY_DENIED),
    ("hostname", Scope.OPERATE, ErrorCode.PERMISSION_DENIED),
    ("", Scope.EXEC, ErrorCode.POLICY_DENIED),
    ("id; reboot", Scope.EXEC, ErrorCode.POLICY_DENIED),
])
def test_a_command_needs_the_policy_and_exec_scope(command: str, scope: Scope, code: ErrorCode) -> None:
    assert refusal(command, caller(scope)).code is code


def test_a_policy_refusal_names_the_profile_in_its_details() -> None:
    failure = refusal("rm -rf /", caller())
    assert failure.info.message.startswith("command refused by policy: ")
    assert failure.info.details == {"profile": "readonly"}


def test_a_narrower_scope_replaces_the_callers_own() -> None:
    failure = refusal("uname -a", caller(Scope.ADMIN), scope=Scope.READ)
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert failure.info.message == "this command needs scope exec; this token has read"


def test_an_extra_profile_decides_for_its_callers_and_nowhere_else(tmp_path: Path) -> None:
    extra = load_profiles_file(_write(tmp_path / "p.toml", TINY_TOML))
    assert authorize_command("hostname", caller(profile="tiny"), extra_profiles=extra).argv == ["hostname"]
    outside = refusal("uname -a", caller(profile="tiny"), extra_profiles=extra)
    assert outside.code is ErrorCode.POLICY_DENIED and "not allowed in profile tiny" in outside.info.message
    assert authorize_command("uname -a", caller(), extra_profiles=extra).argv == ["uname", "-a"]


def test_a_profile_nobody_configured_is_refused_by_name() -> None:
    failure = refusal("hostname", caller(profile="tiny"))
    assert failure.code is ErrorCode.POLICY_DENIED
    assert "unknown command profile 'tiny'" in failure.info.message


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_profiles_file_is_json_by_its_name_and_toml_otherwise(tmp_path: Path) -> None:
    assert set(load_profiles_file(_write(tmp_path / "p.json", TINY_JSON))) == {"tiny"}
    assert set(load_profiles_file(_write(tmp_path / "p.toml", TINY_TOML))) == {"tiny"}
    assert set(load_profiles_file(_write(tmp_path / "profiles.conf", TINY_TOML))) == {"tiny"}


def test_no_profiles_file_means_only_the_built_in_profiles() -> None:
    assert load_configured_profiles(None) == {}
    assert load_configured_profiles("") == {}


@pytest.mark.parametrize("name, text, fragment", [
    ("missing.toml", None, "does not exist"),
    ("bad.toml", "[profiles.x\n", "is not valid TOML"),
    ("bad.json", "{", "is not valid JSON"),
    ("rules.json", json.dumps({"profiles": {"x": {"rules": "nope"}}}), "profiles.x.rules: expected a list"),
    ("scope.toml", '[[profiles.x.rules]]\nprogram = "ls"\nscope = "god"\n', "profiles.x.rules[0].scope"),
    ("list.json", "[1, 2]", "expected a table"),
])
def test_an_unusable_profiles_file_is_refused_naming_the_variable_the_file_and_the_problem(
    tmp_path: Path, name: str, text: str | None, fragment: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ProfileConfigError) as caught:
        load_configured_profiles(path)
    message = str(caught.value)
    assert message.startswith(f"{PROFILES_ENV}: {path}") and fragment in message, message


def test_an_unreadable_profiles_file_is_refused_without_a_traceback(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.toml"
    directory.mkdir()
    with pytest.raises(ProfileConfigError, match="cannot read it"):
        load_configured_profiles(directory)
