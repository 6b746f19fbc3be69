"""A stand-in for the NATS bus: canned worker results, and a record of every request that would have left."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind

UPID = "UPID:pve1:0000ABCD:00112233:65000000:qmstart:100:root@pam:"


def exec_result(command: str, stdout: str = "ok\n") -> dict[str, Any]:
    return {"node": "pve1", "command": command, "exit_code": 0, "stdout": stdout, "stderr": "", "truncated": False,
            "duration_ms": 1.0}


@dataclass
class SentRequest:
    kind: WorkerKind
    op: SshOp | ApiOp
    args: dict[str, Any]
    caller: Caller
    request_id: str | None
    cluster: str = "default"


@dataclass
class FakeBus:
    """Answers like the workers would; `stdout` is what execute_command prints; `gate` holds calls open."""

    stdout: str = "ok\n"
    api_data: Any = None
    gate: asyncio.Event | None = None
    sent: list[SentRequest] = field(default_factory=list)
    connected: bool = True
    task_polls_running: int = 0
    """How many task_status polls answer "running" before the task stops."""

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def any_service(self, kind: WorkerKind, timeout: float = 0.5) -> bool:
        """Readiness: every worker kind answers while the bus is connected."""
        return self.connected

    async def call(self, kind: WorkerKind, op: SshOp | ApiOp, args: dict[str, Any], *, cluster: str, caller: Caller,
                   deadline: float, idempotent: bool, request_id: str | None = None,
                   traceparent: str | None = None) -> dict[str, Any]:
        self.sent.append(SentRequest(kind, op, args, caller, request_id, cluster))
        if self.gate is not None:
            await self.gate.wait()
        if op is SshOp.EXEC:
            return exec_result(args["command"], self.stdout)
        if op is ApiOp.LIST_VMS:
            return {"vms": [], "count": 0}
        if op is ApiOp.NODE_STATUS:
            return {"nodes": [{"node": "pve1", "status": "online"}]}
        if op is ApiOp.VM_STATUS:
            return {"vmid": args["vmid"], "node": "pve1", "type": "qemu", "status": "running"}
        if op is ApiOp.VM_ACTION:
            return {"vmid": args["vmid"], "node": "pve1", "type": "qemu", "action": args["action"], "upid": UPID,
                    "waited": False}
        if op is ApiOp.PROXMOX_API:
            return {"method": args["method"], "path": args["path"], "data": self.api_data}
        if op in (ApiOp.SNAPSHOT_CREATE, ApiOp.SNAPSHOT_DELETE, ApiOp.SNAPSHOT_ROLLBACK):
            return {"upid": UPID, "node": "pve1", "action": op.value, "vmid": args["vmid"], "type": "qemu",
                    "snapshot": args["name"], "waited": False}
        if op is ApiOp.TASK_STATUS:
            polls = sum(1 for sent in self.sent if sent.op is ApiOp.TASK_STATUS)
            running = polls <= self.task_polls_running
            return {"upid": args["upid"], "node": "pve1", "status": "running" if running else "stopped",
                    "exitstatus": None if running else "OK", "ok": None if running else True,
                    "log_tail": [f"line {polls}"] + ([] if running else ["TASK OK"])}
        raise AssertionError(f"unexpected op {op}")
