"""guest_exec: a command inside a QEMU VM through its guest agent (POST agent/exec, then GET agent/exec-status
until it exits or time runs out).

The command line goes through the same command policy as execute_command, with the caller's profile, before
Proxmox is asked; the approved argv is sent as the agent's argument array (no shell in between). Output is capped
like the ssh-worker's (stdout and stderr together, `truncated` when cut).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_object
from proxmox_mcp_runtime.command_policy import ProfileSpec, authorize_command
from proxmox_mcp_runtime.command_reply import fit_reply

from proxmox_mcp_api_worker.operations import Budget, ClusterOperations, Guest
from proxmox_mcp_api_worker.values import as_int, flag, seg

FIRST_POLL = 0.05


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


async def guest_exec(ops: ClusterOperations, args: x.GuestExecArgs, budget: Budget, caller: Caller, *,
                     profiles: Mapping[str, ProfileSpec], max_output: int, max_reply: int,
                     poll: float) -> x.GuestExecResult:
    """profiles: the configured command profiles beside the built-in ones (PMCP_COMMAND_PROFILES)."""
    argv = authorize_command(args.command, caller, extra_profiles=profiles).argv
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
    pid = as_int(answer.get("pid")) if is_object(answer) else None
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
        if not is_object(status):
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
