"""TEST ONLY (PMCP_CONFORMANCE_FIXTURES=true): the fixture tools the MCP conformance suite's 2026 scenarios call by
name (greet, slow_compute, failing_job, protocol_error_job, test_tool_with_task, test_missing_capability, and
echo_region with an x-mcp-header parameter). They run in the gateway, reach no worker and no cluster, and their
tasks go through the same task records, tasks/get and tasks/cancel as the Proxmox tools' tasks (source `fixture`:
a task's state follows from its creation time). A deployment never sets the flag; the tools are not offered
without it.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo

from proxmox_mcp_gateway.mcp_results import error_result, tool_result, wire
from proxmox_mcp_gateway.mcp_tasks import created_task
from proxmox_mcp_gateway.task_records import TaskRecord
from proxmox_mcp_gateway.task_runs import Opening, Settled, TaskRuns

FIXTURE = "fixture"
NAME_KEY = "user_name"
NAME_STATE = "pmcp-fixture-name-v1"
FAILING_SECONDS = 1.0
PROTOCOL_ERROR_SECONDS = 0.5
GREETING_SECONDS = 0.2

_OBJECT: dict[str, Any] = {"type": "object"}
DEFINITIONS: dict[str, types.Tool] = {
    "greet": types.Tool(name="greet", description="Conformance fixture: says hello at once (never a task).",
                        input_schema={**_OBJECT, "properties": {"name": {"type": "string"}}, "required": ["name"]}),
    "slow_compute": types.Tool(
        name="slow_compute", description="Conformance fixture: a task that computes for `seconds` seconds.",
        input_schema={**_OBJECT, "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 600},
                                                "label": {"type": "string"}}}),
    "failing_job": types.Tool(name="failing_job", description="Conformance fixture: a task that ends in a tool "
                              "error after about a second.", input_schema={**_OBJECT, "properties": {}}),
    "protocol_error_job": types.Tool(name="protocol_error_job", description="Conformance fixture: a task that "
                                     "fails with a JSON-RPC error.", input_schema={**_OBJECT, "properties": {}}),
    "test_tool_with_task": types.Tool(name="test_tool_with_task", description="Conformance fixture: asks the "
                                      "user's name (input_required), then greets them in a task.",
                                      input_schema={**_OBJECT, "properties": {}}),
    "test_missing_capability": types.Tool(
        name="test_missing_capability", description="Conformance fixture: needs the client's sampling capability "
        "(-32021 without it).", input_schema={**_OBJECT, "properties": {}}),
    "echo_region": types.Tool(
        name="echo_region", description="Conformance fixture: echoes a region mirrored in the Mcp-Param-Region "
        "header.", input_schema={**_OBJECT, "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                                 "required": ["region"]}),
}


def _text(text: str, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


def _settled(record: TaskRecord) -> Settled | None:
    params = record.params or {}
    elapsed = time.time() - record.created_at
    if record.tool == "slow_compute":
        seconds = float(params.get("seconds", 0))
        if elapsed < seconds:
            return None
        return Settled(message="computed", result=wire(tool_result(
            {"label": params.get("label"), "seconds": seconds}, f"Computed {params.get('label')} in {seconds:g} s")))
    if record.tool == "failing_job":
        if elapsed < FAILING_SECONDS:
            return None
        info = ErrorInfo(code=ErrorCode.UPSTREAM_ERROR, message="the fixture job failed, as it always does")
        return Settled(message="the job failed", result=wire(error_result(info)))
    if record.tool == "protocol_error_job":
        if elapsed < PROTOCOL_ERROR_SECONDS:
            return None
        return Settled(message="internal error", error={"code": types.INTERNAL_ERROR,
                                                        "message": "the fixture job broke the protocol"})
    if elapsed < GREETING_SECONDS:
        return None
    return Settled(message="greeted", result=wire(_text(f"Hello, {params.get('name')}!")))


class FixtureTaskSource:
    async def check(self, record: TaskRecord, caller: Caller) -> Settled | str:
        return _settled(record) or "working"

    def cancelled_message(self, record: TaskRecord) -> str:
        return "cancelled"


FixtureAnswer = types.CallToolResult | types.InputRequiredResult | dict[str, Any]


class ConformanceFixtures:
    def __init__(self, runs: TaskRuns | None) -> None:
        self.runs = runs

    def tools(self) -> list[types.Tool]:
        return list(DEFINITIONS.values())

    def input_schema(self, name: str) -> dict[str, Any] | None:
        tool = DEFINITIONS.get(name)
        return None if tool is None else tool.input_schema

    async def call(self, params: types.CallToolRequestParams, caller: Caller, as_task: bool,
                   capabilities: types.ClientCapabilities | None) -> FixtureAnswer:
        """The fixture's answer: a result, an input_required round, or a task (CreateTaskResult on the wire)."""
        name, args = params.name, params.arguments or {}
        if name == "test_missing_capability":
            if capabilities is None or capabilities.sampling is None:
                data = types.MissingRequiredClientCapabilityErrorData(
                    required_capabilities=types.ClientCapabilities(sampling=types.SamplingCapability()))
                raise MCPError(types.MISSING_REQUIRED_CLIENT_CAPABILITY, "Missing required client capability",
                               data=data.model_dump(by_alias=True, mode="json", exclude_none=True))
            return _text("the client declared sampling")
        if name == "greet":
            return _text(f"Hello, {args.get('name')}!")
        if name == "echo_region":
            return _text(f"region {args.get('region')}")
        task_params: dict[str, Any] = {}
        if name == "slow_compute":
            task_params = {"seconds": float(args.get("seconds", 0)), "label": str(args.get("label", ""))}
        elif name == "test_tool_with_task":
            answer = (params.input_responses or {}).get(NAME_KEY) if params.request_state == NAME_STATE else None
            if not isinstance(answer, types.ElicitResult) or answer.action != "accept":
                request = types.ElicitRequest(params=types.ElicitRequestFormParams(
                    message="What is your name?", requested_schema={
                        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}))
                return types.InputRequiredResult(input_requests={NAME_KEY: request}, request_state=NAME_STATE)
            task_params = {"name": str((answer.content or {}).get("name", ""))}
        if as_task and self.runs is not None:
            record = await self.runs.open(Opening(principal=caller.token_id, tool=name, source=FIXTURE,
                                                  message="working", params=task_params))
            return created_task(record)
        return await self._synchronously(name, task_params)

    async def _synchronously(self, name: str, task_params: dict[str, Any]) -> types.CallToolResult:
        probe = TaskRecord(task_id="sync", principal="", tool=name, source=FIXTURE, created_at=time.time(),
                           updated_at=0, expires_at=0, poll_interval_ms=0, params=task_params)
        while (settled := _settled(probe)) is None:
            await anyio.sleep(0.05)
        if settled.error is not None:
            raise MCPError(settled.error["code"], settled.error["message"])
        assert settled.result is not None
        return types.CallToolResult.model_validate(settled.result)
