"""The client side of the 2026 tasks extension for the official client (mcp 2.3 has the extension mechanism,
ClientExtension/ResultClaim, but no tasks client): tasks/get, tasks/update and tasks/cancel as typed requests
(they carry Mcp-Name: <taskId>), and a claim that resolves `resultType: "task"` by polling tasks/get."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import anyio
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict, Field

TASKS = "io.modelcontextprotocol/tasks"
TERMINAL = ("completed", "failed", "cancelled")


class TaskIdParams(RequestParams):
    task_id: str


class UpdateParams(TaskIdParams):
    input_responses: dict[str, Any] = Field(default_factory=dict)


class GetTaskRequest(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


class UpdateTaskRequest(Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateParams
    name_param: ClassVar[str | None] = "taskId"


class CancelTaskRequest(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


class _Task(Result):
    model_config = ConfigDict(extra="allow")
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class CreateTaskResult(_Task):
    result_type: Literal["task"] = "task"


class DetailedTask(_Task):
    result_type: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class AckResult(Result):
    model_config = ConfigDict(extra="allow")
    result_type: str | None = None


async def get_task(session: ClientSession, task_id: str) -> DetailedTask:
    return await session.send_request(GetTaskRequest(params=TaskIdParams(task_id=task_id)), DetailedTask)


async def cancel_task(session: ClientSession, task_id: str) -> AckResult:
    return await session.send_request(CancelTaskRequest(params=TaskIdParams(task_id=task_id)), AckResult)


async def update_task(session: ClientSession, task_id: str, responses: dict[str, Any]) -> AckResult:
    return await session.send_request(UpdateTaskRequest(params=UpdateParams(task_id=task_id,
                                                                            input_responses=responses)), AckResult)


async def until_done(session: ClientSession, task_id: str, timeout: float = 30.0) -> DetailedTask:
    """Poll tasks/get at the task's pollIntervalMs until it is terminal."""
    with anyio.fail_after(timeout):
        while True:
            task = await get_task(session, task_id)
            if task.status in TERMINAL:
                return task
            await anyio.sleep((task.poll_interval_ms or 200) / 1000)


async def _resolve(created: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
    task = await until_done(ctx.session, created.task_id)
    if task.status == "completed" and task.result is not None:
        return CallToolResult.model_validate(task.result)
    raise RuntimeError(f"task {task.task_id} ended {task.status}: {task.status_message} {task.error}")


class TasksClient(ClientExtension):
    """Declares the tasks extension; call_tool resolves a task by polling it (allow_claimed=True returns it)."""

    identifier = TASKS

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=CreateTaskResult, resolve=_resolve),)


async def call_for_task(client: Client, name: str, arguments: dict[str, Any]) -> CreateTaskResult | CallToolResult:
    """The call's own answer: a CreateTaskResult (not resolved) or a result."""
    result = await client.session.call_tool(name, arguments, allow_claimed=True)
    assert isinstance(result, CreateTaskResult | CallToolResult), result
    return result
