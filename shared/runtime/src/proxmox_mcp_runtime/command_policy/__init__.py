"""Command policy engine of execute_command: parse without a shell, match an allowlist profile, deny by default.

    from proxmox_mcp_runtime.command_policy import evaluate_command, PolicyDecision, PROFILES
    decision = evaluate_command("qm list", "readonly")
    if decision.allowed:
        send(shlex.join(decision.argv))   # the host shell rebuilds exactly decision.argv

Everything below this module is standard-library only and also runs on the Proxmox host inside the
forced-command dispatcher (deploy/host/pmcp-dispatch, built by `python -m
proxmox_mcp_runtime.command_policy.bundle`). This wrapper adds the contracts' types: `authorize_command` is THE
check of a caller's command that the gateway and both workers make (execute_command, container_exec,
guest_exec), and `load_configured_profiles` reads the one profiles file (PMCP_COMMAND_PROFILES) they all share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

from .builtin import BUILTIN_PROFILES
from .config import ProfileConfigError, load_profiles, load_profiles_file
from .dispatch import with_sudo
from .engine import evaluate
from .model import ArgSpec, CommandRule, PathResolver, ProfileSpec

__all__ = [
    "PROFILES",
    "PROFILES_ENV",
    "ArgSpec",
    "CommandRule",
    "PolicyDecision",
    "ProfileConfigError",
    "ProfileSpec",
    "authorize_command",
    "evaluate_command",
    "load_configured_profiles",
    "load_profiles",
    "load_profiles_file",
    "with_sudo",
]

PROFILES: Mapping[str, ProfileSpec] = MappingProxyType(BUILTIN_PROFILES)
"""The built-in profiles: readonly, operator, admin."""
PROFILES_ENV = "PMCP_COMMAND_PROFILES"
"""The variable naming the extra profiles file; the gateway and both workers must be given the same one."""
COMMAND_TOOL_SCOPE = Scope.EXEC
"""Running a command (execute_command, container_exec, guest_exec) needs exec scope at least (DESIGN.md)."""


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    argv: list[str]
    """The argv to run, program as its bare canonical name ("/usr/sbin/qm" -> "qm"); empty when refused."""
    reason: str
    """Why refused (naming the offending token or rule), or "matched rule '...' of profile ..."."""
    required_scope: Scope
    """The scope the equivalent typed operation needs (read; operate for qm/pct lifecycle; admin for writes)."""
    destructive: bool
    """Needs the same confirmation as the matching destructive typed tool (stop, reset, destroy, rollback, ...)."""
    profile: str


def evaluate_command(
    command: str,
    profile: str,
    *,
    extra_profiles: Mapping[str, ProfileSpec] | None = None,
    resolve: PathResolver | None = None,
) -> PolicyDecision:
    """Decide whether command may run under profile (built-in, or from extra_profiles, which take precedence).

    Never raises for a hostile or malformed command: it is refused with a reason. `resolve` (the host's
    os.path.realpath) additionally checks the files that path arguments really name.
    """
    core = evaluate(command, profile, extra_profiles=extra_profiles, resolve=resolve)
    return PolicyDecision(
        allowed=core.allowed,
        argv=list(core.argv),
        reason=core.reason,
        required_scope=Scope(core.scope),
        destructive=core.destructive,
        profile=core.profile,
    )


def authorize_command(
    command: str,
    caller: Caller,
    *,
    extra_profiles: Mapping[str, ProfileSpec] | None = None,
    scope: Scope | None = None,
) -> PolicyDecision:
    """The approved decision for command under the caller's profile, or ServiceFailure: policy_denied (details
    name the profile) or permission_denied. Its required_scope is what the call needs (the command's own scope,
    exec at least); scope replaces the caller's (the gateway's read-only mode); argv is never empty."""
    decision = evaluate_command(command, caller.command_profile, extra_profiles=extra_profiles)
    if not decision.allowed:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: " + decision.reason,
                             details={"profile": decision.profile})
    if not decision.argv:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: nothing to run",
                             details={"profile": decision.profile})
    held = caller.scope if scope is None else scope
    needed = decision.required_scope if decision.required_scope.includes(COMMAND_TOOL_SCOPE) else COMMAND_TOOL_SCOPE
    if not held.includes(needed):
        raise ServiceFailure(ErrorCode.PERMISSION_DENIED,
                             f"this command needs scope {needed.value}; this token has {held.value}")
    return replace(decision, required_scope=needed)


def load_configured_profiles(path: str | Path | None) -> dict[str, ProfileSpec]:
    """The extra profiles of the PMCP_COMMAND_PROFILES file (none when it is unset). ProfileConfigError, its
    message starting with the variable's name, when the file cannot be used."""
    if path is None or str(path) == "":
        return {}
    try:
        return load_profiles_file(path)
    except ProfileConfigError as exc:
        raise ProfileConfigError(f"{PROFILES_ENV}: {exc}") from None
