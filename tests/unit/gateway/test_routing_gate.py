"""The routing-header gate through the real ASGI app (fake bus): a 2026-era tools/call whose Mcp-Name the token may
not call, or that a rate limit refuses, is answered from its headers; everything else reaches the SDK as before."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx2
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.app import Gateway, build_app
from proxmox_mcp_gateway.calls import CallLimits, ToolExecutor
from proxmox_mcp_gateway.health import HealthMonitor
from proxmox_mcp_gateway.routing_gate import REFUSED_BY_GATEWAY
from proxmox_mcp_gateway.security import build_security
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_state import shared_state_for
from proxmox_mcp_gateway.state_wiring import state_keeper_for
from pydantic import SecretStr

from tests.unit.gateway.fakes import FakeBus

STATIC = "static-" + "y" * 20
PROTOCOL = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": PROTOCOL, "io.modelcontextprotocol/clientCapabilities": {}}



@contextlib.asynccontextmanager
async def gateway_client(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[httpx2.AsyncClient, FakeBus]]:
    settings = GatewaySettings(token=SecretStr(STATIC), state_dir=tmp_path, probe_interval=3600, **overrides)
    bus = FakeBus()
    state = shared_state_for(settings, lambda: None)
    gateway = Gateway(settings=settings, bus=cast(Any, bus),
                      executor=ToolExecutor(cast(Any, bus), CallLimits(), build_security(settings)),
                      state=state, keeper=state_keeper_for(settings, state, lambda: None, "test"),
                      health=HealthMonitor(cast(Any, bus), cluster="default", interval=3600, timeout=1))
    app = build_app(settings, gateway=gateway)
    transport = httpx2.ASGITransport(app)
    # The lifespan runs the MCP session manager (httpx's ASGI transport does not).
    async with app.router.lifespan_context(app), httpx2.AsyncClient(transport=transport,
                                                                     base_url="http://127.0.0.1:8080") as client:
        yield client, bus


def tool_requests(bus: FakeBus) -> list[str]:
    """What reached the (fake) workers for calls, leaving out the health monitor's probes."""
    return [sent.op.value for sent in bus.sent if sent.caller.token_id != "gateway-probe"]


async def call(client: httpx2.AsyncClient, name: str, header_name: str | None = None,
               arguments: dict[str, Any] | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {STATIC}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json",
               "MCP-Protocol-Version": PROTOCOL, "Mcp-Method": "tools/call"}
    if header_name is not None:
        headers["Mcp-Name"] = header_name
    body = {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {}, "_meta": META}}
    return await client.post("/mcp", headers=headers, content=json.dumps(body))


async def test_a_rate_limit_is_answered_429_from_the_headers_with_retry_after(tmp_path: Path) -> None:
    async with gateway_client(tmp_path, rate_limit="1/m") as (client, bus):
        first = await call(client, "list_vms", "list_vms")
        assert first.status_code == 200 and not first.json()["result"].get("isError")
        refused = await call(client, "list_vms", "list_vms")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 59
    error = refused.json()["error"]
    assert refused.json()["id"] is None and error["code"] == REFUSED_BY_GATEWAY
    assert error["data"]["code"] == "rate_limited" and error["data"]["retryable"] is True
    assert tool_requests(bus) == ["list_vms"]


async def test_a_forbidden_tool_is_refused_403_and_nothing_is_sent(tmp_path: Path) -> None:
    async with gateway_client(tmp_path, token_scope=Scope.READ) as (client, bus):
        refused = await call(client, "execute_command", "execute_command", {"command": "uptime"})
    assert refused.status_code == 403 and refused.headers["connection"] == "close"
    assert refused.json()["error"]["data"]["code"] == "permission_denied" and tool_requests(bus) == []


async def test_an_unknown_or_absent_name_leaves_the_decision_to_the_body(tmp_path: Path) -> None:
    async with gateway_client(tmp_path, token_scope=Scope.READ) as (client, bus):
        unknown = await call(client, "no_such_tool", "no_such_tool")
        mismatch = await call(client, "list_vms", "no_such_tool")
    assert unknown.status_code == 200, unknown.text
    assert unknown.json()["result"]["structuredContent"]["code"] == "invalid_argument"
    assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == -32020
    assert tool_requests(bus) == []
