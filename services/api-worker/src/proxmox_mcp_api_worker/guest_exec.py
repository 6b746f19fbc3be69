"""guest_exec: a command inside a QEMU VM through its guest agent (POST agent/exec, then GET agent/exec-status
until it exits or time runs out).

The command line goes through the same command policy as execute_command, with the caller's profile, before
Proxmox is asked; the approved argv is sent as the agent's argument array (no shell in between). Output is capped
like the ssh-worker's (stdout and stderr together, `truncated` when cut).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.command_policy import evaluate_command

from proxmox_mcp_api_worker.operations import Budget, ClusterOperations, Guest
from proxmox_mcp_api_worker.values import as_int, flag, seg

TOOL_SCOPE = Scope.EXEC
"""guest_exec runs commands, like execute_command: exec scope at least (DESIGN.md)."""
FIRST_POLL = 0.05
_ENVELOPE_ALLOWANCE = 1024


def authorize_guest_command(command: str, caller: Caller) -> list[str]:
    """The approved argv for command under the caller's profile; raises policy_denied / permission_denied."""
    decision = evaluate_command(command, caller.command_profile)
    if not decision.allowed:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: " + decision.reason)
    needed = decision.required_scope if decision.required_scope.includes(TOOL_SCOPE) else TOOL_SCOPE
    if not caller.scope.includes(needed):
        raise ServiceFailure(ErrorCode.PERMISSION_DENIED,
                             f"this command needs scope {needed.value}; the caller has {caller.scope.value}")
    if not decision.argv:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: nothing to run")
    return list(decision.argv)


def _agent_failure(exc: ServiceFailure, guest: Guest) -> ServiceFailure:
    message = exc.info.message
    if "guest agent" in message.lower():
        return ServiceFailure(
            ErrorCode.CONFLICT,
            f"VM {guest.vmid} cannot run commands through its QEMU guest agent: {message} (enable the agent in the "
            "VM's options and install and start qemu-guest-agent inside the guest)",
            details={"vmid": guest.vmid, "proxmox": message},
        )
    return exc


def cap_output(stdout: str, stderr: str, limit: int) -> tuple[str, str, bool]:
    """stdout first, then stderr, at most limit bytes together (UTF-8), like the SSH output cap."""
    out = stdout.encode()
    err = stderr.encode()
    if len(out) + len(err) <= limit:
        return stdout, stderr, False
    out = out[:limit]
    err = err[: max(limit - len(out), 0)]
    return out.decode(errors="ignore"), err.decode(errors="ignore"), True


def fit_reply(result: x.GuestExecResult, limit: int) -> x.GuestExecResult:
    """Cut stdout/stderr further so the JSON reply stays under limit bytes (escaping can grow text up to 6x)."""
    for _ in range(8):
        size = len(result.model_dump_json()) + _ENVELOPE_ALLOWANCE
        if size <= limit:
            return result
        keep = max(0.0, 1 - (size - limit) / max(len(json.dumps(result.stdout + result.stderr)), 1)) * 0.98
        result = result.model_copy(update={
            "stdout": result.stdout[: int(len(result.stdout) * keep)],
            "stderr": result.stderr[: int(len(result.stderr) * keep)],
            "truncated": True,
        })
    return result.model_copy(update={"stdout": "", "stderr": "", "truncated": True})


async def guest_exec(ops: ClusterOperations, args: x.GuestExecArgs, budget: Budget, caller: Caller, *,
                     max_output: int, max_reply: int, poll: float) -> x.GuestExecResult:
    argv = authorize_guest_command(args.command, caller)
    guest = await ops.locate(args.vmid, args.node, budget)
    if guest.type != "qemu":
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{args.vmid} is an LXC container: containers have no "
                             "guest agent; use container_exec (pct exec over SSH) instead",
                             details={"vmid": args.vmid, "type": guest.type})
    base = f"/nodes/{seg(guest.node)}/qemu/{guest.vmid}/agent"
    started = time.monotonic()
    try:
        answer = await ops.call(budget, "POST", f"{base}/exec", {"command": argv})
    except ServiceFailure as exc:
        raise _agent_failure(exc, guest) from None
    pid = as_int(answer.get("pid")) if isinstance(answer, dict) else None
    if pid is None:
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox started the command in VM {guest.vmid} but "
                             "returned no process id")
    give_up = started + min(float(args.timeout), max(budget.left(), 0.0))
    delay = FIRST_POLL
    while True:
        try:
            status = await ops.call(budget, "GET", f"{base}/exec-status", {"pid": pid})
        except ServiceFailure as exc:
            raise _agent_failure(exc, guest) from None
        if not isinstance(status, dict):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's agent/exec-status answer is not an object")
        if flag(status.get("exited")):
            break
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            raise ServiceFailure(
                ErrorCode.TIMEOUT,
                f"the command did not exit within {time.monotonic() - started:.0f}s in VM {guest.vmid}; it may "
                f"still be running there (guest agent pid {pid}): the guest agent offers no way to stop it",
                details={"vmid": guest.vmid, "pid": pid},
            )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, poll)
    return _result(guest, args.command, pid, status, time.monotonic() - started, max_output, max_reply)


def _result(guest: Guest, command: str, pid: int, status: dict[str, Any], seconds: float, max_output: int,
            max_reply: int) -> x.GuestExecResult:
    stdout, stderr, capped = cap_output(str(status.get("out-data") or ""), str(status.get("err-data") or ""),
                                        max_output)
    truncated = capped or flag(status.get("out-truncated")) or flag(status.get("err-truncated"))
    result = x.GuestExecResult(
        vmid=guest.vmid, node=guest.node, type="qemu", command=command, exit_code=as_int(status.get("exitcode")),
        signal=as_int(status.get("signal")), stdout=stdout, stderr=stderr, truncated=truncated,
        duration_ms=round(seconds * 1000, 3), pid=pid,
    )
    return fit_reply(result, max_reply)
