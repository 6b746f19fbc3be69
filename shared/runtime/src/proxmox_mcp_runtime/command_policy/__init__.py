"""Command policy engine of execute_command: parse without a shell, match an allowlist profile, deny by default.

    from proxmox_mcp_runtime.command_policy import evaluate_command, PolicyDecision, PROFILES
    decision = evaluate_command("qm list", "readonly")
    if decision.allowed:
        send(shlex.join(decision.argv))   # the host shell rebuilds exactly decision.argv

Everything below this module is standard-library only and also runs on the Proxmox host inside the
forced-command dispatcher (deploy/host/pmcp-dispatch, built by `python -m
proxmox_mcp_runtime.command_policy.bundle`). This wrapper only adds the contracts' Scope type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from proxmox_mcp_contracts.envelope import Scope

from .builtin import BUILTIN_PROFILES
from .config import ProfileConfigError, load_profiles
from .dispatch import with_sudo
from .engine import evaluate
from .model import ArgSpec, CommandRule, PathResolver, ProfileSpec

__all__ = [
    "PROFILES",
    "ArgSpec",
    "CommandRule",
    "PolicyDecision",
    "ProfileConfigError",
    "ProfileSpec",
    "evaluate_command",
    "load_profiles",
    "with_sudo",
]

PROFILES: Mapping[str, ProfileSpec] = MappingProxyType(BUILTIN_PROFILES)
"""The built-in profiles: readonly, operator, admin."""


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
