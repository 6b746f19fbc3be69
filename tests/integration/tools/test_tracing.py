"""One call can be followed across processes: the client's W3C trace context (a `traceparent` HTTP header, or
`_meta.traceparent` in the MCP request) reaches the audit record and the worker's log lines."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import httpx2
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.tools.helpers import ToolsStack
from tests.support.mcp_client import http_client
from tests.support.procs import wait_until


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


def _worker_lines(stack: ToolsStack, kind: str) -> list[dict[str, Any]]:
    worker = next(proc for proc in stack.workers if proc.name == kind)
    return [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]


def test_a_rest_call_joins_the_callers_trace_in_the_audit_and_the_worker_log(tools_stack: ToolsStack) -> None:
    traceparent, trace_id = _traceparent()
    token = tools_stack.token(Scope.READ)
    response = httpx2.post(f"{tools_stack.gateway.base_url}/api/mcp/tools/call", timeout=30,
                           headers={"Authorization": f"Bearer {token}", "traceparent": traceparent},
                           json={"name": "vm_status", "arguments": {"vmid": 999_999}})
    assert response.status_code == 404, response.text
    records = [r for r in tools_stack.records("vm_status") if r.get("trace_id") == trace_id]
    assert len(records) == 1 and records[0]["result"] == "not_found", records
    wait_until(lambda: any(line.get("trace_id") == trace_id for line in _worker_lines(tools_stack, "api-worker")),
               timeout=10, what="the api-worker to log the failed request with the trace id")
    line = next(line for line in _worker_lines(tools_stack, "api-worker") if line.get("trace_id") == trace_id)
    assert line["msg"] == "request failed" and line["code"] == "not_found"
    assert line["request_id"] == records[0]["request_id"]


async def test_an_mcp_call_joins_the_trace_in_its_meta(tools_stack: ToolsStack) -> None:
    traceparent, trace_id = _traceparent()
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        result = await client.call_tool("list_vms", {}, meta={"traceparent": traceparent})  # type: ignore[arg-type]
    assert not result.is_error
    assert [r["result"] for r in tools_stack.records("list_vms") if r.get("trace_id") == trace_id] == ["ok"]


async def test_without_a_trace_each_call_starts_its_own(tools_stack: ToolsStack) -> None:
    before = {r["request_id"] for r in tools_stack.records("node_status")}
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        for _ in range(2):
            assert not (await client.call_tool("node_status", {})).is_error
    new = [r for r in tools_stack.records("node_status") if r["request_id"] not in before]
    assert len(new) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", r["trace_id"]) for r in new)
    assert new[0]["trace_id"] != new[1]["trace_id"]


async def test_a_resource_read_joins_the_trace_in_its_meta(tools_stack: ToolsStack) -> None:
    traceparent, trace_id = _traceparent()
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        await client.read_resource("proxmox://clusters/alpha/nodes", meta={"traceparent": traceparent},  # type: ignore[arg-type]
                                   cache_mode="bypass")
    assert [r["transport"] for r in tools_stack.audit() if r.get("trace_id") == trace_id] == ["mcp-http-resource"]
