"""Who may call what: tool visibility (scope, token allowlist, read-only mode) and per-call argument policy
(execute_command's command policy, proxmox_api's path/method/parameter rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.command_policy import ProfileSpec, authorize_command
from pydantic import BaseModel

from proxmox_mcp_gateway.api_policy import check_api_call, destructive_api_call
from proxmox_mcp_gateway.catalog import TOOLS, TOOLS_BY_NAME, ToolSpec
from proxmox_mcp_gateway.tools_guests import DESTRUCTIVE_ACTIONS

__all__ = ["DESTRUCTIVE_ACTIONS", "AccessPolicy", "CallDecision"]

CommandArgs = t.ExecuteCommandArgs | x.GuestExecArgs | x.ContainerExecArgs


@dataclass
class CallDecision:
    """What the policy decided about one call; it goes into the audit record."""

    allowed: bool
    reason: str
    required_scope: str | None = None
    destructive: bool = False
    profile: str | None = None
    argv: list[str] | None = None
    confirmation: str | None = None
    """How a destructive call was confirmed (elicitation, input_required, argument, disabled) or why it was not
    (declined, cancelled, missing, timeout, failed)."""

    def as_record(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class AccessPolicy:
    read_only: bool = False
    """Server-wide read-only mode: every caller is treated as a read-scope caller."""
    extra_profiles: Mapping[str, ProfileSpec] = field(default_factory=dict[str, ProfileSpec])
    """Command profiles from configuration, beside the built-in readonly/operator/admin."""
    exposed: frozenset[str] | None = None
    """The tools this deployment offers (tool profile / PMCP_TOOLS); None = every tool."""

    def effective_scope(self, caller: Caller) -> Scope:
        return Scope.READ if self.read_only else caller.scope

    def refusal(self, spec: ToolSpec, caller: Caller) -> str | None:
        """Why caller may not use this tool at all, or None."""
        allowed: frozenset[str] | None = getattr(caller, "allowed_tools", None)
        if allowed is not None and spec.name not in allowed:
            return f"{spec.name} is not in this token's tool allowlist"
        scope = self.effective_scope(caller)
        if not scope.includes(spec.scope):
            mode = " (the server is in read-only mode)" if self.read_only and caller.scope.includes(spec.scope) else ""
            return f"{spec.name} needs scope {spec.scope.value}; this token has {scope.value}{mode}"
        return None

    def offered(self, spec: ToolSpec) -> bool:
        return self.exposed is None or spec.name in self.exposed

    def visible_tools(self, caller: Caller) -> list[ToolSpec]:
        return [spec for spec in TOOLS if self.offered(spec) and self.refusal(spec, caller) is None]

    def lookup(self, name: str, caller: Caller, *, any_offered: bool = False) -> ToolSpec:
        """The tool, if the caller may use it. any_offered: also tools the exposure profile leaves out (the
        resources read through them; the profile is about client context, not rights)."""
        spec = TOOLS_BY_NAME.get(name)
        if spec is None or not (any_offered or self.offered(spec)):
            known = ", ".join(s.name for s in self.visible_tools(caller))
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"unknown tool {name!r}; available: {known}")
        why = self.refusal(spec, caller)
        if why is not None:
            raise ServiceFailure(ErrorCode.PERMISSION_DENIED, why)
        return spec

    def authorize(self, spec: ToolSpec, args: BaseModel, caller: Caller) -> CallDecision:
        """Check the arguments against the caller's rights; may rewrite args to the checked canonical form."""
        scope = self.effective_scope(caller)
        if isinstance(args, CommandArgs):
            return self._authorize_command(args, caller, scope)
        if isinstance(args, t.ProxmoxApiArgs):
            decision = check_api_call(args.method, args.path, args.data, scope)
            args.path = decision.path
            return CallDecision(allowed=True, reason=f"{decision.template}: {decision.reason}",
                                required_scope=decision.required_scope.value,
                                destructive=destructive_api_call(args.method, decision.path))
        needed = spec.required_scope(args)
        if not scope.includes(needed):
            raise ServiceFailure(ErrorCode.PERMISSION_DENIED,
                                 f"{spec.name} with these arguments needs scope {needed.value}; "
                                 f"this token has {scope.value}")
        return CallDecision(allowed=True, reason=f"scope {scope.value} includes {needed.value}",
                            required_scope=needed.value, destructive=spec.destructive_call(args))

    def _authorize_command(self, args: CommandArgs, caller: Caller, scope: Scope) -> CallDecision:
        decision = authorize_command(args.command, caller, extra_profiles=self.extra_profiles, scope=scope)
        return CallDecision(allowed=True, reason=decision.reason, required_scope=decision.required_scope.value,
                            destructive=decision.destructive, profile=decision.profile, argv=decision.argv)
