"""Runs one tool call for any front end (MCP over HTTP or stdio, REST): validate, authorize, dispatch."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.subjects import ApiOp, WorkerKind
from pydantic import BaseModel, ValidationError

from proxmox_mcp_gateway.bus import WorkerBus
from proxmox_mcp_gateway.catalog import TOOLS, TOOLS_BY_NAME, ToolSpec

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True)
class CallLimits:
    api_timeout: float = 30.0
    """Seconds a single API worker call may take end to end."""
    max_command_timeout: int = 300
    """execute_command's timeout is capped at this many seconds."""
    command_grace: float = 5.0
    """Extra seconds the gateway waits past a command's own timeout for the worker's answer."""
    task_poll_interval: float = 0.5
    """How often a waiting vm_action polls its Proxmox task."""
    default_cluster: str = "default"


def validation_message(exc: ValidationError) -> str:
    """Name each bad argument and why, without echoing the rejected values."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_args(spec: ToolSpec, raw: dict[str, Any] | None) -> BaseModel:
    try:
        return spec.args_model.model_validate(raw or {})
    except ValidationError as exc:
        raise ServiceFailure(
            ErrorCode.INVALID_ARGUMENT, f"invalid arguments for {spec.name}: {validation_message(exc)}"
        ) from None


class ToolExecutor:
    def __init__(self, bus: WorkerBus, limits: CallLimits) -> None:
        self.bus = bus
        self.limits = limits

    def visible_tools(self, caller: Caller) -> list[ToolSpec]:
        return [spec for spec in TOOLS if caller.scope.includes(spec.scope)]

    def lookup(self, name: str, caller: Caller) -> ToolSpec:
        spec = TOOLS_BY_NAME.get(name)
        if spec is None or spec not in self.visible_tools(caller):
            known = ", ".join(s.name for s in self.visible_tools(caller))
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"unknown tool {name!r}; available: {known}")
        return spec

    async def call(
        self, name: str, raw_args: dict[str, Any] | None, caller: Caller, progress: ProgressFn | None = None
    ) -> dict[str, Any]:
        spec = self.lookup(name, caller)
        args = parse_args(spec, raw_args)
        needed = spec.required_scope(args)
        if not caller.scope.includes(needed):
            raise ServiceFailure(
                ErrorCode.PERMISSION_DENIED,
                f"{spec.name} with these arguments needs scope {needed.value}; this token has {caller.scope.value}",
            )
        cluster = self.limits.default_cluster
        if isinstance(args, t.ExecuteCommandArgs):
            args.timeout = min(args.timeout, self.limits.max_command_timeout)
            deadline = time.time() + args.timeout + self.limits.command_grace
        else:
            deadline = time.time() + self.limits.api_timeout
        payload = args.model_dump(mode="json", exclude_none=True)
        result = await self.bus.call(
            spec.kind, spec.op, payload, cluster=cluster, caller=caller, deadline=deadline,
            idempotent=spec.idempotent_call(args),
        )
        if isinstance(args, t.VmActionArgs) and args.wait:
            result = await self._wait_for_task(result, args, caller, cluster, progress)
        return _checked(spec, result)

    async def _wait_for_task(
        self, started: dict[str, Any], args: t.VmActionArgs, caller: Caller, cluster: str,
        progress: ProgressFn | None,
    ) -> dict[str, Any]:
        import asyncio

        action = t.VmActionResult.model_validate(started)
        wait_until = time.monotonic() + args.wait_timeout
        step = 0
        last_line: str | None = None
        while True:
            query = t.TaskStatusArgs(upid=action.upid, node=action.node, log_lines=20)
            raw = await self.bus.call(
                WorkerKind.API, ApiOp.TASK_STATUS, query.model_dump(mode="json", exclude_none=True),
                cluster=cluster, caller=caller, deadline=time.time() + self.limits.api_timeout, idempotent=True,
            )
            task = t.TaskResult.model_validate(raw)
            step += 1
            line = task.log_tail[-1] if task.log_tail else None
            if progress is not None and (task.status == "running" or step == 1 or line != last_line):
                await progress(float(step), None, f"task {task.status}" + (f": {line}" if line else ""))
            last_line = line
            if task.status == "stopped":
                if progress is not None:
                    await progress(float(step + 1), float(step + 1), f"task finished: {task.exitstatus}")
                action.task = task
                action.waited = True
                return action.model_dump(mode="json")
            if time.monotonic() >= wait_until:
                raise ServiceFailure(
                    ErrorCode.TIMEOUT,
                    f"task {action.upid} still running after {args.wait_timeout} s; it goes on in Proxmox "
                    "(check it with proxmox_api GET /nodes/{node}/tasks/{upid}/status)",
                    details={"upid": action.upid},
                )
            await asyncio.sleep(self.limits.task_poll_interval)


def _checked(spec: ToolSpec, result: dict[str, Any]) -> dict[str, Any]:
    try:
        return spec.result_model.model_validate(result).model_dump(mode="json")
    except ValidationError:
        raise ServiceFailure(ErrorCode.INTERNAL, f"the worker's {spec.name} result did not match its schema") from None
