"""The 2026 Streamable HTTP details through the real gateway: a tool refused from its Mcp-Name routing header before
the body is read (nothing reaches a worker), the SDK's header/body mismatch error, cache hints on lists and reads,
and `X-Accel-Buffering: no` on every streamed response of both eras."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import HEADER_MISMATCH
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.routing_gate import REFUSED_BY_GATEWAY

from tests.integration.tools.helpers import ToolsStack
from tests.support.mcp_client import http_client
from tests.support.sim import reset_sim
from tests.support.worker_stats import worker_requests

PROTOCOL = "2026-07-28"


@pytest.fixture(autouse=True)
def fresh_beta(tools_stack: ToolsStack) -> Iterator[None]:
    yield
    reset_sim(tools_stack.beta)


async def _refused_head(url: str, token: str, tool: str, framing: str) -> tuple[int, dict[str, str], bytes]:
    """Send a tools/call's headers and only the first KiB of a body larger than the gateway's cap, then read the
    answer: it can only come from a refusal that did not wait for the body."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        start = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                            "params": {"name": tool, "arguments": {"command": "x" * 2000}}}).encode()[:1024]
        length = (b"Transfer-Encoding: chunked\r\n" if framing == "chunked"
                  else f"Content-Length: {4 * 1024 * 1024}\r\n".encode())
        writer.write(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                     f"MCP-Protocol-Version: {PROTOCOL}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n".encode()
                     + length + b"\r\n"
                     + (f"{len(start):x}\r\n".encode() + start + b"\r\n" if framing == "chunked" else start))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout=10)
        return int(lines[0].split()[1]), headers, body
    finally:
        writer.close()


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_tool_the_token_may_not_call_is_refused_from_mcp_name_before_the_body_is_read(
    tools_stack: ToolsStack, framing: str,
) -> None:
    reader_token = tools_stack.token(Scope.READ)
    before = await worker_requests(tools_stack.nats_url)
    status, headers, body = await _refused_head(tools_stack.gateway.url, reader_token, "execute_command", framing)
    assert status == 403 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["id"] is None and answer["error"]["code"] == REFUSED_BY_GATEWAY
    assert answer["error"]["data"]["code"] == "permission_denied"
    assert answer["error"]["message"].startswith("permission_denied: execute_command needs scope exec")
    assert await worker_requests(tools_stack.nats_url) == before
    refusals = [r for r in tools_stack.audit() if r.get("event") == "http_rejected"
                and r.get("result") == "permission_denied" and "execute_command" in r.get("message", "")]
    assert refusals


async def test_the_official_client_sees_the_refusal_as_an_error_of_the_call(tools_stack: ToolsStack) -> None:
    from mcp.shared.exceptions import MCPError

    before = await worker_requests(tools_stack.nats_url)
    async with http_client(tools_stack.gateway.url, tools_stack.token(Scope.READ)) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("vm_action", {"vmid": 100, "action": "stop", "confirm": True})
        assert refused.value.error.code == REFUSED_BY_GATEWAY
        assert not (await client.call_tool("list_vms", {"cluster": "beta"})).is_error  # the session goes on
    assert await worker_requests(tools_stack.nats_url) == before + 1


async def test_a_header_body_mismatch_gets_the_spec_error_through_the_gateway(tools_stack: ToolsStack) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": PROTOCOL, "io.modelcontextprotocol/clientCapabilities": {}}
    before = await worker_requests(tools_stack.nats_url)
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(tools_stack.gateway.url, headers={
            "Authorization": f"Bearer {tools_stack.gateway.token}", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL, "Mcp-Method": "tools/call", "Mcp-Name": "list_vms"},
            json={"jsonrpc": "2.0", "id": 41, "method": "tools/call",
                  "params": {"name": "node_status", "arguments": {}, "_meta": meta}})
    assert response.status_code == 400
    assert response.json()["id"] == 41 and response.json()["error"]["code"] == HEADER_MISMATCH
    assert await worker_requests(tools_stack.nats_url) == before


async def test_lists_carry_cache_hints_private_where_they_depend_on_the_token(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.token(Scope.READ)) as reader:
        read_tools = await reader.list_tools()
        assert read_tools.ttl_ms > 0 and read_tools.cache_scope == "private"
        resources = await reader.list_resources()
        templates = await reader.list_resource_templates()
        prompts = await reader.list_prompts()
        for listed in (resources, templates, prompts):
            assert listed.ttl_ms > 0 and listed.cache_scope == "public", listed
        vm = tools_stack.first_guest("alpha", "qemu", "running")
        status = await reader.read_resource(f"proxmox://vms/{vm['vmid']}")
        nodes = await reader.read_resource("proxmox://clusters/beta/nodes")
        help_text = await reader.read_resource("proxmox://terminal")
        assert status.cache_scope == nodes.cache_scope == "private"
        assert 0 < status.ttl_ms < nodes.ttl_ms < help_text.ttl_ms and help_text.cache_scope == "public"
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as admin:
        admin_tools = await admin.list_tools()
        again = await admin.list_tools(cache_mode="refresh")
    read_names = [t.name for t in read_tools.tools]
    admin_names = [t.name for t in admin_tools.tools]
    assert set(read_names) < set(admin_names) and "execute_command" in set(admin_names) - set(read_names)
    assert [t.name for t in again.tools] == admin_names  # a deterministic order


@contextlib.asynccontextmanager
async def _recording_client(url: str, token: str, mode: str,
                            seen: list[httpx2.Response]) -> AsyncIterator[Client]:
    async def record(response: httpx2.Response) -> None:
        seen.append(response)

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60,
                              event_hooks={"response": [record]})
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:  # type: ignore[arg-type]
        yield client


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_streamed_responses_tell_proxies_not_to_buffer_in_both_eras(tools_stack: ToolsStack,
                                                                          mode: str) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    seen: list[httpx2.Response] = []
    notes: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message)

    async with _recording_client(tools_stack.gateway.url, tools_stack.gateway.token, mode, seen) as client:
        result = await client.call_tool("vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                      "cluster": "beta"}, progress_callback=on_progress)
        assert not result.is_error and notes
    streamed = [r for r in seen if r.headers.get("content-type", "").startswith("text/event-stream")]
    assert streamed, [r.headers.get("content-type") for r in seen]
    assert all(r.headers.get("x-accel-buffering") == "no" for r in streamed)
