"""The command policy gate of execute_command: runs before any SSH activity. Swappable (see CommandAuthorizer)."""

from __future__ import annotations

from collections.abc import Callable

from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.command_policy import evaluate_command

CommandAuthorizer = Callable[[str, Caller], list[str]]
"""(command line, caller) → the argv to run; raises ServiceFailure when the command may not run."""

TOOL_SCOPE = Scope.EXEC
"""execute_command is an exec-scope tool (DESIGN.md); the worker checks it again, not only the gateway."""


def authorize_command(command: str, caller: Caller) -> list[str]:
    """Parse and check command under the caller's profile; return the approved argv (never a shell string)."""
    decision = evaluate_command(command, caller.command_profile)
    if not decision.allowed:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: " + decision.reason)
    needed = decision.required_scope if decision.required_scope.includes(TOOL_SCOPE) else TOOL_SCOPE
    if not caller.scope.includes(needed):
        raise ServiceFailure(
            ErrorCode.PERMISSION_DENIED, f"this command needs scope {needed.value}; the caller has {caller.scope.value}"
        )
    if not decision.argv:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: nothing to run")
    return list(decision.argv)
