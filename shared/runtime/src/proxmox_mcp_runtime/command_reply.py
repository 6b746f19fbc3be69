"""The reply of a command (execute_command, container_exec: ssh-worker; guest_exec: api-worker) must fit in one
NATS message: output is cut further when its JSON would not, and the reply says truncated=true."""

from __future__ import annotations

import json
from typing import TypeVar

from proxmox_mcp_contracts.tools import ExecResult
from proxmox_mcp_contracts.tools_extra import GuestExecResult

ENVELOPE_ALLOWANCE = 1024
"""Room for the reply envelope around the result (request id, keys)."""
_ROUNDS = 8

CommandResult = TypeVar("CommandResult", ExecResult, GuestExecResult)


def fit_reply(result: CommandResult, limit: int) -> CommandResult:
    """Cut stdout/stderr so the JSON reply stays under limit bytes (escaping can make text grow up to 6x)."""
    for _ in range(_ROUNDS):
        size = len(result.model_dump_json()) + ENVELOPE_ALLOWANCE
        if size <= limit:
            return result
        text = len(result.stdout) + len(result.stderr)
        if text == 0:
            break  # what is too big is not the output: cutting cannot help
        keep = max(0.0, 1 - (size - limit) / max(len(json.dumps(result.stdout + result.stderr)), 1)) * 0.98
        result = result.model_copy(update={
            "stdout": result.stdout[: int(len(result.stdout) * keep)],
            "stderr": result.stderr[: int(len(result.stderr) * keep)],
            "truncated": True,
        })
    return result.model_copy(update={"stdout": "", "stderr": "", "truncated": True})
