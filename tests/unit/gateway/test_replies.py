"""MCP (the SDK's in-process client) and REST answer the same tool call the same way: the result with its text,
a refusal with its code, and a failure the executor did not foresee as `internal` without its details."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from mcp import Client
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_gateway.app import Gateway, build_app
from proxmox_mcp_gateway.calls import CallLimits, ToolExecutor
from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME
from proxmox_mcp_gateway.health import HealthMonitor
from proxmox_mcp_gateway.mcp_server import build_mcp_server
from proxmox_mcp_gateway.security import build_security
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_state import shared_state_for
from proxmox_mcp_gateway.state_wiring import state_keeper_for
from pydantic import SecretStr

from tests.unit.gateway.fakes import FakeBus

TOKEN = "replies-" + "x" * 20


class ExplodingExecutor(ToolExecutor):
    """An executor with a bug: its call fails with an exception it did not turn into a ServiceFailure."""

    async def call_with_tasks(self, name: str, raw_args: dict[str, Any] | None, caller: Caller, *args: Any,
                              **kwargs: Any) -> dict[str, Any]:
        """Both front ends go through here (call() is call_with_tasks() without tasks)."""
        raise RuntimeError("bug at /srv/gateway/secret.py with token s3cr3t")


Answer = tuple[bool, dict[str, Any] | None, str]
"""(is error, structured content, text) as the client sees it."""


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(token=SecretStr(TOKEN), token_scope=Scope.READ, stdio_scope=Scope.READ, state_dir=tmp_path)


def executor_for(settings: GatewaySettings, exploding: bool) -> tuple[ToolExecutor, FakeBus]:
    bus = FakeBus()
    kind = ExplodingExecutor if exploding else ToolExecutor
    return kind(cast(Any, bus), CallLimits(), build_security(settings)), bus


async def over_mcp(executor: ToolExecutor, settings: GatewaySettings, name: str, args: dict[str, Any]) -> Answer:
    caller = Caller(token_id="stdio", scope=settings.stdio_scope, command_profile=settings.stdio_profile)
    async with Client(build_mcp_server(executor, stdio_caller=caller)) as client:
        result = await client.call_tool(name, args)
    text = result.content[0].text  # type: ignore[union-attr]
    return result.is_error, result.structured_content, text


async def over_rest(executor: ToolExecutor, settings: GatewaySettings, name: str,
                    args: dict[str, Any]) -> tuple[int, Answer]:
    gateway = Gateway(settings=settings, bus=executor.bus, executor=executor,
                          state=(state := shared_state_for(settings, lambda: None)),
                          keeper=state_keeper_for(settings, state, lambda: None, "test"),
                      health=HealthMonitor(executor.bus, cluster="default", interval=10, timeout=1))
    transport = httpx2.ASGITransport(build_app(settings, gateway=gateway), client=("127.0.0.1", 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        response = await client.post("/api/mcp/tools/call", headers={"Authorization": f"Bearer {TOKEN}"},
                                     json={"name": name, "arguments": args})
    body = response.json()
    structured = body["error"] if body["isError"] else body["structuredContent"]
    return response.status_code, (body["isError"], structured, body["content"][0]["text"])


async def test_a_result_reads_the_same_over_mcp_and_rest(settings: GatewaySettings) -> None:
    executor, bus = executor_for(settings, exploding=False)
    mcp = await over_mcp(executor, settings, "list_vms", {})
    status, rest = await over_rest(executor, settings, "list_vms", {})
    assert status == 200
    empty = {"vms": [], "count": 0, "unreachable": [], "unreachable_nodes": []}
    assert mcp == rest == (False, empty, TOOLS_BY_NAME["list_vms"].render(empty))
    assert len(bus.sent) == 2


async def test_a_refusal_carries_the_same_code_and_message_over_mcp_and_rest(settings: GatewaySettings) -> None:
    executor, bus = executor_for(settings, exploding=False)
    args = {"vmid": 100, "action": "stop", "confirm": True}
    is_error, structured, text = await over_mcp(executor, settings, "vm_action", args)
    status, (rest_error, rest_structured, rest_text) = await over_rest(executor, settings, "vm_action", args)
    assert is_error and rest_error and status == 403
    assert structured is not None and rest_structured is not None
    assert structured["code"] == rest_structured["code"] == "permission_denied"
    assert structured["message"] == rest_structured["message"] and text == rest_text
    assert text.startswith("permission_denied: ")
    assert bus.sent == []


async def test_an_unforeseen_failure_is_internal_over_mcp_and_rest_and_shows_nothing_of_itself(
    settings: GatewaySettings
) -> None:
    executor, _ = executor_for(settings, exploding=True)
    is_error, structured, text = await over_mcp(executor, settings, "list_vms", {})
    status, (rest_error, rest_structured, rest_text) = await over_rest(executor, settings, "list_vms", {})
    assert is_error and rest_error and status == 500
    assert structured is not None and rest_structured is not None
    assert structured["code"] == rest_structured["code"] == "internal"
    assert structured["message"] == rest_structured["message"] == "the gateway failed on this call"
    assert text == rest_text == "internal: the gateway failed on this call"
    for shown in (str(structured), str(rest_structured), text):
        assert "secret" not in shown and "/srv" not in shown and "RuntimeError" not in shown
