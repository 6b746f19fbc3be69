"""Caller authentication and scopes on a real gateway: 401s, the token CLI, hidden and refused tools."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.catalog import TOOLS
from proxmox_mcp_gateway.routing_gate import REFUSED_BY_GATEWAY
from proxmox_mcp_gateway.tokens import TokenStore

from tests.integration.security.conftest import SecureStack
from tests.support.mcp_client import http_client

LIST = {"name": "list_vms", "arguments": {}}

READ_TOOLS = {spec.name for spec in TOOLS if spec.scope is Scope.READ}
"""Every read-scope tool of the catalog (the default tool profile offers all of them)."""


def rest(stack: SecureStack, token: str | None, body: dict[str, Any] = LIST, path: str = "/api/mcp/tools/call",
         **headers: str) -> httpx2.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.post(f"{stack.gateway.base_url}{path}", json=body, headers={**auth, **headers}, timeout=30)


def assert_401(response: httpx2.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer realm=")
    error = response.json()["error"]
    assert error["code"] == "unauthenticated" and words in error["message"]


def test_no_token_and_a_bad_token_get_401_on_every_protected_endpoint(stack: SecureStack) -> None:
    for path in ("/api/mcp/tools/call", "/api/mcp/tools/list", "/mcp"):
        assert_401(rest(stack, None, path=path), "missing")
        assert_401(rest(stack, "not-a-token", path=path), "invalid")
        assert_401(rest(stack, stack.gateway.token + "x", path=path), "invalid")


def test_a_token_made_with_the_cli_works_until_revoked_without_a_restart(stack: SecureStack) -> None:
    created = stack.cli("create", "--name", "cli-agent", "--scope", "read", "--json")
    assert created.returncode == 0, created.stderr
    token = stack.secrets.add("cli token", json.loads(created.stdout)["token"])
    assert rest(stack, token).status_code == 200
    listing = stack.cli("list")
    assert "cli-agent" in listing.stdout and token not in listing.stdout and token not in stack.tokens_file.read_text()
    token_id = json.loads(created.stdout)["id"]
    assert stack.cli("revoke", token_id).returncode == 0
    assert_401(rest(stack, token), "revoked")
    entry = stack.audit()[-1]
    assert entry["event"] == "http_rejected" and entry["token_id"] == token_id and entry["result"] == "unauthenticated"


def test_an_expired_token_gets_401(stack: SecureStack) -> None:
    store = TokenStore(stack.tokens_file)
    new = store.create(name="short-lived", scope=Scope.READ, expires_at=datetime.now(UTC) + timedelta(hours=1))
    stack.secrets.add("expiring token", new.secret)
    assert rest(stack, new.secret).status_code == 200
    entries = [e.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)}) if e.id == new.entry.id
               else e for e in store.load()]
    store._write(entries)  # the clock moved on: same effect as waiting for the expiry
    assert_401(rest(stack, new.secret), "expired")


async def test_a_read_token_sees_no_exec_or_operate_tools_and_calls_to_them_are_refused(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    async with http_client(stack.gateway.url, token, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == READ_TOOLS and {"list_vms", "vm_status", "node_status", "proxmox_api"} <= names
        result = await client.call_tool("execute_command", {"command": "uptime"})
        assert result.is_error and result.structured_content is not None
        assert result.structured_content["code"] == "permission_denied"
        result = await client.call_tool("vm_action", {"vmid": 100, "action": "stop"})
        assert result.is_error and "needs scope operate" in result.content[0].text  # type: ignore[union-attr]
        assert not (await client.call_tool("list_vms", {})).is_error
    async with http_client(stack.gateway.url, token) as modern:  # refused from Mcp-Name, before the body
        assert {tool.name for tool in (await modern.list_tools()).tools} == names
        with pytest.raises(MCPError) as refused:
            await modern.call_tool("execute_command", {"command": "uptime"})
        assert refused.value.error.code == REFUSED_BY_GATEWAY
        assert isinstance(refused.value.error.data, dict) and refused.value.error.data["code"] == "permission_denied"
        assert not (await modern.call_tool("list_vms", {})).is_error
    response = rest(stack, token, {"name": "execute_command", "arguments": {"command": "uptime"}})
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    listed = rest(stack, token, {}, path="/api/mcp/tools/list").json()["tools"]
    assert "execute_command" not in {tool["name"] for tool in listed}


async def test_a_token_allowlist_limits_even_an_admin_token(stack: SecureStack) -> None:
    token = stack.token(Scope.ADMIN, tools=["node_status"])
    async with http_client(stack.gateway.url, token, mode="legacy") as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["node_status"]
        result = await client.call_tool("list_vms", {})
        assert result.is_error and "allowlist" in result.content[0].text  # type: ignore[union-attr]
    async with http_client(stack.gateway.url, token) as modern:
        with pytest.raises(MCPError, match="allowlist"):
            await modern.call_tool("list_vms", {})


@pytest.fixture(scope="module")
def read_only_gateway(stack: SecureStack) -> Any:
    gateway = stack.start_gateway("read-only", {"PMCP_READ_ONLY": "true", "PMCP_TOKEN_SCOPE": "admin"})
    yield gateway
    gateway.proc.stop()


async def test_read_only_mode_offers_only_read_tools_even_to_admin(stack: SecureStack, read_only_gateway: Any) -> None:
    async with http_client(read_only_gateway.url, read_only_gateway.token) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == READ_TOOLS and {"list_vms", "vm_status", "node_status", "proxmox_api"} <= names
        start = {"method": "POST", "path": f"/nodes/{stack.sim.nodes[0]}/qemu/100/status/start"}
        result = await client.call_tool("proxmox_api", start)
        assert result.is_error and "read" in result.content[0].text  # type: ignore[union-attr]
        assert not (await client.call_tool("node_status", {})).is_error
