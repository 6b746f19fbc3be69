"""What a task of the tasks extension follows: a Proxmox task by UPID, checked once per tasks/get."""

from __future__ import annotations

from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
from pydantic import ValidationError

from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME, TaskMode
from proxmox_mcp_gateway.mcp_results import error_result, tool_result, wire
from proxmox_mcp_gateway.task_records import TaskRecord
from proxmox_mcp_gateway.task_runs import Settled
from proxmox_mcp_gateway.tasks import TaskFollower

PROXMOX = "proxmox"


def finished_result(record: TaskRecord, task: t.TaskResult) -> dict[str, Any]:
    """The CallToolResult the tool would have answered after waiting (wait=true), on the wire. An exit status other
    than OK makes it a tool error (isError) whose details name the task; the task itself still completed."""
    spec = TOOLS_BY_NAME[record.tool]
    finished = task.model_dump(mode="json")
    if spec.task is TaskMode.STARTS:
        structured: dict[str, Any] = {**(record.started or {}), "task": finished, "waited": True}
        try:
            structured = spec.result_model.model_validate(structured).model_dump(mode="json")
        except ValidationError:
            info = ErrorInfo(code=ErrorCode.INTERNAL, message=f"the {spec.name} result did not match its schema")
            return wire(error_result(info))
    else:
        structured = finished
    text = spec.render(structured)
    if task.exitstatus == "OK":
        return wire(tool_result(structured, text))
    info = ErrorInfo(code=ErrorCode.UPSTREAM_ERROR,
                     message=f"Proxmox task {task.upid} ended with exit status {task.exitstatus!r}",
                     details={"upid": task.upid, "node": task.node, "exitstatus": task.exitstatus,
                              "log_tail": task.log_tail})
    return wire(error_result(info, text))


def _progress(task: t.TaskResult) -> str:
    line = task.log_tail[-1] if task.log_tail else None
    return f"task {task.status}" + (f": {line}" if line else "")


class ProxmoxTaskSource:
    def __init__(self, follower: TaskFollower) -> None:
        self.follower = follower

    async def check(self, record: TaskRecord, caller: Caller) -> Settled | str:
        assert record.upid is not None and record.cluster is not None
        reader = caller if caller.scope is Scope.READ else caller.model_copy(update={"scope": Scope.READ})
        try:
            task = await self.follower.status(record.upid, record.cluster, reader)
        except ServiceFailure as exc:
            if exc.info.retryable:  # the worker or NATS is away for now; the task goes on: ask again later
                return f"could not check the Proxmox task just now ({exc.info.as_text()}); it goes on"
            info = ErrorInfo(code=exc.code, message=f"{exc.info.message} (while following task {record.upid})",
                             details={"upid": record.upid})
            return Settled(message=f"the Proxmox task could not be followed: {exc.code.value}",
                           result=wire(error_result(info)))
        if task.status != "stopped":
            return _progress(task)
        return Settled(message=f"Proxmox task finished: {task.exitstatus}", result=finished_result(record, task))

    def cancelled_message(self, record: TaskRecord) -> str:
        return (f"cancelled: the gateway stopped following Proxmox task {record.upid}, which was not stopped and "
                "goes on in Proxmox (follow it with task_status or wait_task)")
