"""The tasks extension (`io.modelcontextprotocol/tasks`, spec 2026-07-28) on the SDK's low-level server: its
methods (tasks/get, tasks/update, tasks/cancel) as the SDK's Extension/MethodBinding, and the wire shapes.

A client that declares the extension on a 2026-era request gets `resultType: "task"` for long work (a tool that
starts a Proxmox task, called with wait=true; wait_task) and follows it with tasks/get; everyone else keeps the
answer in the call (progress notifications, wait). The task methods answer only the token that created the task
(another token's task id is unknown: -32602), need the extension declared on the request (-32021), and check the
Mcp-Name routing header against params.taskId (-32020), as the extension's Streamable HTTP section asks.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Generator, Sequence
from typing import Any

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types import HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from proxmox_mcp_contracts.envelope import Caller
from pydantic import Field

from proxmox_mcp_gateway.task_records import TaskRecord
from proxmox_mcp_gateway.task_runs import TaskNotFound, TaskRuns, TaskStoreUnavailable

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"

CallerOf = Callable[[ServerRequestContext[Any, Any]], Caller]


class TaskIdParams(RequestParams):
    task_id: str = Field(max_length=256)


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, Any] = Field(default_factory=dict[str, Any])


def client_takes_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request declares the extension and is of an era that can carry a task (the 2026 one)."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and TASKS_EXTENSION in capabilities.extensions)


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _task(record: TaskRecord) -> dict[str, Any]:
    task: dict[str, Any] = {"taskId": record.task_id, "status": record.status.value,
                            "createdAt": _iso(record.created_at), "lastUpdatedAt": _iso(record.updated_at),
                            "ttlMs": record.ttl_ms, "pollIntervalMs": record.poll_interval_ms}
    if record.status_message:
        task["statusMessage"] = record.status_message
    return task


def created_task(record: TaskRecord) -> dict[str, Any]:
    """A CreateTaskResult: flat Result & Task with resultType "task"."""
    return {"resultType": "task", **_task(record)}


def detailed_task(record: TaskRecord) -> dict[str, Any]:
    """tasks/get's DetailedTask: the final result (completed) or JSON-RPC error (failed) inlined."""
    task = _task(record)
    if record.result is not None:
        task["result"] = record.result
    if record.error is not None:
        task["error"] = record.error
    return task


def _check_routing_name(ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
    headers = getattr(ctx.request, "headers", None)
    if headers is None:  # stdio: no routing headers
        return
    raw = headers.get(MCP_NAME_HEADER)
    if raw is None or decode_header_value(raw.strip()) != task_id:
        raise MCPError(HEADER_MISMATCH, f"{MCP_NAME_HEADER} header does not match the request body's taskId "
                       "(tasks/get, tasks/update and tasks/cancel carry Mcp-Name: <taskId>)")


class TasksExtension(Extension):
    identifier = TASKS_EXTENSION

    def __init__(self, runs: TaskRuns, caller_of: CallerOf) -> None:
        self.runs = runs
        self.caller_of = caller_of

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (MethodBinding("tasks/get", TaskIdParams, self._get, protocol_versions=modern),
                MethodBinding("tasks/update", UpdateTaskParams, self._update, protocol_versions=modern),
                MethodBinding("tasks/cancel", TaskIdParams, self._cancel, protocol_versions=modern))

    def _checked(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> Caller:
        require_client_extension(ctx, TASKS_EXTENSION)
        _check_routing_name(ctx, params.task_id)
        return self.caller_of(ctx)

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> HandlerResult:
        caller = self._checked(ctx, params)
        with _errors():
            return detailed_task(await self.runs.get(params.task_id, caller))

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> HandlerResult:
        """Our tasks never wait for input (a confirmation is settled before the task exists), so no response is
        ever outstanding: they are ignored, as the extension asks, and the update is acknowledged."""
        caller = self._checked(ctx, params)
        with _errors():
            await self.runs.get(params.task_id, caller)
        return {}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> HandlerResult:
        caller = self._checked(ctx, params)
        with _errors():
            await self.runs.cancel(params.task_id, caller)
        return {}


@contextlib.contextmanager
def _errors() -> Generator[None]:
    """TaskNotFound -> -32602 (the extension's code for an unknown task), the store away -> -32603."""
    try:
        yield
    except TaskNotFound as exc:
        raise MCPError(INVALID_PARAMS, f"Failed to retrieve task: {exc}") from None
    except TaskStoreUnavailable:
        raise MCPError(INTERNAL_ERROR, "the task store does not answer now; try again") from None


def install(server: Server[Any], extension: Extension) -> None:
    """What MCPServer(extensions=[...]) does for its extensions, on the low-level server: the methods (each kept
    to its protocol versions) and the capability advertised under capabilities.extensions."""
    for binding in extension.methods():
        if server.get_request_handler(binding.method) is not None:
            raise ValueError(f"{binding.method} is already served")
        server.add_request_handler(binding.method, binding.params_type, _gated(binding))
    server.extensions[extension.identifier] = extension.settings()


def _gated(binding: MethodBinding) -> Callable[[ServerRequestContext[Any, Any], Any], Any]:
    versions = binding.protocol_versions

    async def handler(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        if versions is not None and ctx.protocol_version not in versions:
            raise MCPError(METHOD_NOT_FOUND, "Method not found", data=binding.method)
        return await binding.handler(ctx, params)

    return handler
