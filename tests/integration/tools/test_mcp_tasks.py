"""The 2026 tasks extension with the official client (on beta, whose simulated tasks take 1.5 s): long calls become
tasks followed with tasks/get to the Proxmox exit status; tasks/cancel stops the following, not the Proxmox task;
a task is its creator's only; clients without the extension keep the answer in the call."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    InputRequiredResult,
)
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.tools.helpers import Elicitor, ToolsStack, call_ok
from tests.support.mcp_client import http_client
from tests.support.mcp_tasks import (
    CreateTaskResult,
    TasksClient,
    call_for_task,
    cancel_task,
    get_task,
    until_done,
)
from tests.support.procs import wait_until
from tests.support.sim import reset_sim


@pytest.fixture(autouse=True)
def fresh_beta(tools_stack: ToolsStack) -> Iterator[None]:
    yield
    reset_sim(tools_stack.beta)


def sim_task(stack: ToolsStack, upid: str) -> dict[str, Any]:
    with stack.sim("beta") as sim:
        return sim.get(f"/nodes/{upid.split(':')[1]}/tasks/{upid}/status")


async def test_a_start_with_wait_answers_a_task_that_tasks_get_follows_to_the_exit_status(
    tools_stack: ToolsStack,
) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        began = time.monotonic()
        created = await call_for_task(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                            "cluster": "beta"})
        assert isinstance(created, CreateTaskResult), created
        assert time.monotonic() - began < 1.5, "the task answers at once, not after the Proxmox task"
        assert created.status == "working" and created.ttl_ms and created.ttl_ms > 0
        assert created.poll_interval_ms and created.poll_interval_ms > 0
        working = await get_task(client.session, created.task_id)
        assert working.status == "working" and working.result is None and working.result_type == "complete"
        done = await until_done(client.session, created.task_id)
        assert done.status == "completed" and done.result is not None
        result = CallToolResult.model_validate(done.result)
        assert not result.is_error
        structured = result.structured_content
        assert structured is not None and structured["waited"] is True
        assert structured["task"]["exitstatus"] == "OK" and structured["task"]["ok"] is True
        assert tools_stack.guest_status("beta", vm["vmid"]) == "running"
        assert sim_task(tools_stack, structured["upid"])["exitstatus"] == "OK"
        # The finished task keeps its result; asking again does not reach the worker for a new answer.
        again = await get_task(client.session, created.task_id)
        assert again.result == done.result and again.last_updated_at == done.last_updated_at
    [record] = [r for r in tools_stack.records("vm_action", result="ok", event="tool_call")
              if r.get("task_id") == created.task_id]
    assert record["upid"] == structured["upid"]
    finished = [r for r in tools_stack.audit() if r.get("event") == "task_finished"
                and r.get("task_id") == created.task_id]
    assert finished and finished[0]["result"] == "ok"


async def test_the_claim_resolves_the_task_into_the_call_result(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        started = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                      "cluster": "beta"})
        assert started["waited"] is True and started["task"]["ok"] is True


async def test_a_proxmox_task_that_fails_is_a_completed_task_whose_result_is_a_tool_error(
    tools_stack: ToolsStack,
) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        created = await call_for_task(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                            "cluster": "beta"})
        assert isinstance(created, CreateTaskResult)
        done = await until_done(client.session, created.task_id)
    assert done.status == "completed" and done.error is None and done.result is not None
    result = CallToolResult.model_validate(done.result)
    assert result.is_error and isinstance(result.structured_content, dict)
    assert result.structured_content["code"] == "upstream_error"
    assert "already running" in result.structured_content["details"]["exitstatus"]
    assert result.content[0].text.startswith("upstream_error: ")  # type: ignore[union-attr]


async def test_cancel_stops_the_following_while_the_proxmox_task_finishes(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        created = await call_for_task(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                            "cluster": "beta"})
        assert isinstance(created, CreateTaskResult)
        ack = await cancel_task(client.session, created.task_id)
        assert ack.result_type == "complete" and not ack.model_extra
        cancelled = await get_task(client.session, created.task_id)
        assert cancelled.status == "cancelled" and cancelled.result is None
        assert cancelled.status_message and "goes on in Proxmox" in cancelled.status_message
        upid = cancelled.status_message.split("Proxmox task ")[1].split(",")[0]
        assert sim_task(tools_stack, upid)["status"] == "running"
        wait_until(lambda: sim_task(tools_stack, upid)["status"] == "stopped", timeout=15, what="the task to end")
        assert sim_task(tools_stack, upid)["exitstatus"] == "OK"
        assert (await get_task(client.session, created.task_id)).status == "cancelled"
        # Cancelling again (a terminal task) is the same empty acknowledgement.
        assert (await cancel_task(client.session, created.task_id)).result_type == "complete"
    assert tools_stack.guest_status("beta", vm["vmid"]) == "running"
    assert any(r.get("event") == "task_cancelled" and r.get("task_id") == created.task_id
               for r in tools_stack.audit())


async def test_another_token_cannot_read_or_cancel_a_task(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    other = tools_stack.token(Scope.ADMIN)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as owner:
        created = await call_for_task(owner, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                           "cluster": "beta"})
        assert isinstance(created, CreateTaskResult)
        async with http_client(tools_stack.gateway.url, other, extensions=[TasksClient()]) as stranger:
            for attempt in (get_task, cancel_task):
                with pytest.raises(MCPError) as refused:
                    await attempt(stranger.session, created.task_id)
                assert refused.value.error.code == INVALID_PARAMS
                assert "Task not found" in refused.value.error.message
        assert (await until_done(owner.session, created.task_id)).status == "completed"


async def test_task_methods_need_the_extension_and_a_matching_routing_header(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as plain:
        with pytest.raises(MCPError) as undeclared:
            await get_task(plain.session, "whatever")
        assert undeclared.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        with pytest.raises(MCPError) as unknown:
            await get_task(client.session, "no-such-task")
        assert unknown.value.error.code == INVALID_PARAMS
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}}
        response = await _raw_post(tools_stack, {"jsonrpc": "2.0", "id": 7, "method": "tasks/get",
                                                 "params": {"taskId": "abc", "_meta": meta}},
                                   {"Mcp-Method": "tasks/get", "Mcp-Name": "not-abc"})
        assert response.status_code == 400 and response.json()["error"]["code"] == HEADER_MISMATCH


async def test_without_the_extension_a_wait_is_answered_in_the_call_as_before(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    for mode in ("legacy", "auto"):
        async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode=mode) as client:
            result = await client.session.call_tool("vm_action", {"vmid": vm["vmid"], "action": "start",
                                                                  "wait": True, "cluster": "beta"})
            assert isinstance(result, CallToolResult) and not result.is_error
            assert isinstance(result.structured_content, dict) and result.structured_content["waited"] is True
        reset_sim(tools_stack.beta)


async def test_wait_task_becomes_a_task_and_a_call_without_wait_answers_the_upid_at_once(
    tools_stack: ToolsStack,
) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        started = await call_for_task(client, "vm_action", {"vmid": vm["vmid"], "action": "start",
                                                            "cluster": "beta"})
        assert isinstance(started, CallToolResult) and isinstance(started.structured_content, dict)
        upid = started.structured_content["upid"]
        followed = await call_for_task(client, "wait_task", {"upid": upid, "cluster": "beta"})
        assert isinstance(followed, CreateTaskResult)
        done = await until_done(client.session, followed.task_id)
        assert done.result is not None and done.result["structuredContent"]["exitstatus"] == "OK"


async def _raw_post(stack: ToolsStack, body: dict[str, Any], headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(stack.gateway.url, json=body, headers={
            "Authorization": f"Bearer {stack.gateway.token}", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28", **headers})


async def test_a_snapshot_with_wait_is_a_task_like_every_task_starting_tool(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, extensions=[TasksClient()]) as client:
        created = await call_for_task(client, "create_snapshot", {"vmid": vm["vmid"], "name": "t14snap",
                                                                  "wait": True, "cluster": "beta"})
        assert isinstance(created, CreateTaskResult)
        done = await until_done(client.session, created.task_id)
    assert done.status == "completed" and done.result is not None
    structured = done.result["structuredContent"]
    assert structured["snapshot"] == "t14snap" and structured["waited"] is True and structured["task"]["ok"] is True


async def test_a_destructive_call_is_confirmed_before_its_task_is_created(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")
    asked = Elicitor()
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, elicitation_callback=asked,
                           extensions=[TasksClient()]) as client:
        session = client.session
        first = await session.call_tool("vm_action", {"vmid": vm["vmid"], "action": "stop", "wait": True,
                                                      "cluster": "beta"}, allow_input_required=True,
                                        allow_claimed=True)
        assert isinstance(first, InputRequiredResult) and not hasattr(first, "task_id")
        # The official client answers the question, retries, and resolves the task it then gets.
        done = await client.call_tool("vm_action", {"vmid": vm["vmid"], "action": "stop", "wait": True,
                                                    "cluster": "beta"})
    assert asked.asked and not done.is_error and isinstance(done.structured_content, dict)
    assert done.structured_content["task"]["ok"] is True
    calls = [r for r in tools_stack.records("vm_action", event="tool_call", result="ok")
             if r["arguments"]["vmid"] == vm["vmid"]]
    assert calls[-1]["task_id"] and calls[-1]["decision"]["confirmation"] == "input_required"
