"""The gateway's HTTP edge through the real ASGI app (fake bus): 401/403/413/421/429 and what they carry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.app import Gateway, build_app
from proxmox_mcp_gateway.calls import CallLimits, ToolExecutor
from proxmox_mcp_gateway.health import HealthMonitor
from proxmox_mcp_gateway.security import build_security
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_state import shared_state_for
from proxmox_mcp_gateway.state_wiring import state_keeper_for
from proxmox_mcp_gateway.tokens import TokenStore
from pydantic import SecretStr

from tests.unit.gateway.fakes import FakeBus

STATIC = "static-" + "x" * 20

AppFactory = Callable[..., tuple[httpx2.AsyncClient, FakeBus, GatewaySettings]]


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[AppFactory]:
    clients: list[httpx2.AsyncClient] = []

    def factory(peer: str = "127.0.0.1", **overrides: Any) -> tuple[httpx2.AsyncClient, FakeBus, GatewaySettings]:
        settings = GatewaySettings(token=SecretStr(STATIC), state_dir=tmp_path, **overrides)
        bus = FakeBus()
        executor = ToolExecutor(cast(Any, bus), CallLimits(), build_security(settings))
        gateway = Gateway(settings=settings, bus=cast(Any, bus), executor=executor,
                          state=(state := shared_state_for(settings, lambda: None)),
                          keeper=state_keeper_for(settings, state, lambda: None, "test"),
                          health=HealthMonitor(cast(Any, bus), cluster="default", interval=10, timeout=1))
        app = build_app(settings, gateway=gateway)
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app, client=(peer, 40000)),
                                    base_url="http://127.0.0.1:8080")
        clients.append(client)
        return client, bus, settings

    yield factory
    for client in clients:
        await client.aclose()


def auth(token: str = STATIC) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_lines(settings: GatewaySettings) -> list[dict[str, Any]]:
    path = settings.audit_path()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


CALL = {"name": "list_vms", "arguments": {}}


@pytest.mark.parametrize("headers,error", [
    ({}, None),
    ({"Authorization": "Bearer wrong-token"}, "invalid_token"),
    ({"Authorization": "Basic Zm9vOmJhcg=="}, None),
    ({"Authorization": "Bearer pmcp_0123456789ab_" + "A" * 43}, "invalid_token"),
])
async def test_missing_or_bad_tokens_get_401_with_a_bearer_challenge(
    make_client: AppFactory, headers: dict[str, str], error: str | None
) -> None:
    client, bus, settings = make_client()
    for method, path in [("POST", "/api/mcp/tools/call"), ("POST", "/api/mcp/tools/list"), ("POST", "/mcp")]:
        response = await client.request(method, path, headers=headers, json=CALL)
        assert response.status_code == 401, path
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and (error is None or f'error="{error}"' in challenge)
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.json()["error"]["details"]["reason"] in ("missing_token", "invalid_token")
    assert bus.sent == []
    assert {r["result"] for r in audit_lines(settings)} == {"unauthenticated"}


async def test_expired_and_revoked_store_tokens_get_401_and_revocation_needs_no_restart(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client, _, _ = make_client()
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="agent", scope=Scope.READ)
    assert (await client.post("/api/mcp/tools/call", headers=auth(new.secret), json=CALL)).status_code == 200
    store.revoke(new.entry.id)
    response = await client.post("/api/mcp/tools/call", headers=auth(new.secret), json=CALL)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


async def test_open_endpoints_answer_without_a_token_and_list_tools_only_with_one(make_client: AppFactory) -> None:
    client, _, _ = make_client()
    assert (await client.get("/health")).status_code == 200
    assert "tools" not in (await client.get("/api/mcp")).json()
    tools = (await client.get("/api/mcp", headers=auth())).json()["tools"]
    assert "execute_command" in tools


async def test_rest_tools_list_hides_what_the_token_may_not_use(make_client: AppFactory, tmp_path: Path) -> None:
    client, bus, _ = make_client()
    reader = TokenStore(tmp_path / "tokens.json").create(name="reader", scope=Scope.READ, tools=["list_vms",
                                                                                                "vm_action"])
    names = [t["name"] for t in (await client.post("/api/mcp/tools/list", headers=auth(reader.secret))).json()["tools"]]
    assert names == ["list_vms"]
    response = await client.post("/api/mcp/tools/call", headers=auth(reader.secret),
                                 json={"name": "vm_action", "arguments": {"vmid": 100, "action": "stop"}})
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert bus.sent == []


@pytest.mark.parametrize("body, message", [
    (b"{not json", "body is not valid JSON"),
    (b"[]", 'body must be {"name": "<tool>", "arguments": {...}}'),
    (b'{"arguments": {}}', 'body must be {"name": "<tool>", "arguments": {...}}'),
    (b'{"name": 7}', 'body must be {"name": "<tool>", "arguments": {...}}'),
    (b'{"name": "list_vms", "arguments": [1]}', "arguments must be an object"),
])
async def test_a_malformed_rest_call_gets_400_saying_what_is_wrong_and_reaches_no_worker(
    make_client: AppFactory, body: bytes, message: str
) -> None:
    client, bus, _ = make_client()
    response = await client.post("/api/mcp/tools/call", headers={**auth(), "Content-Type": "application/json"},
                                 content=body)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_argument", "message": message, "retryable": False,
                                        "details": {}}
    assert bus.sent == []


async def test_addresses_outside_the_allowlist_get_403_even_with_a_valid_token(make_client: AppFactory) -> None:
    client, bus, settings = make_client(peer="192.168.7.7", allowed_cidrs=["10.0.0.0/8"])
    for path in ("/api/mcp/tools/call", "/mcp", "/api/mcp"):
        response = await client.post(path, headers=auth(), json=CALL)
        assert response.status_code == 403 and "allowlist" in response.json()["error"]["message"]
    assert (await client.get("/health")).status_code == 200  # liveness stays open
    assert bus.sent == [] and audit_lines(settings)[0]["client"] == "192.168.7.7"
    inside, _, _ = make_client(peer="10.2.3.4", allowed_cidrs=["10.0.0.0/8"])
    assert (await inside.post("/api/mcp/tools/call", headers=auth(), json=CALL)).status_code == 200


@pytest.mark.parametrize("peer, allowed", [
    ("::ffff:10.2.3.4", "10.0.0.0/8"),
    ("10.2.3.4", "::ffff:10.0.0.0/104"),
])
async def test_the_allowlist_and_token_networks_match_an_ipv4_client_however_either_is_written(
    make_client: AppFactory, tmp_path: Path, peer: str, allowed: str
) -> None:
    client, _, _ = make_client(peer=peer, allowed_cidrs=[allowed])
    new = TokenStore(tmp_path / "tokens.json").create(name="lan", scope=Scope.READ, cidrs=[allowed])
    assert (await client.post("/api/mcp/tools/call", headers=auth(), json=CALL)).status_code == 200
    assert (await client.post("/api/mcp/tools/call", headers=auth(new.secret), json=CALL)).status_code == 200
    outside, _, _ = make_client(peer=peer.replace("10.2.3.4", "192.168.2.3"), allowed_cidrs=[allowed])
    assert (await outside.post("/api/mcp/tools/call", headers=auth(), json=CALL)).status_code == 403


async def test_a_spoofed_forwarded_for_from_a_non_proxy_is_ignored(make_client: AppFactory) -> None:
    client, _, _ = make_client(peer="192.168.7.7", allowed_cidrs=["10.0.0.0/8"], trusted_proxies=["127.0.0.1"])
    spoofed = {**auth(), "X-Forwarded-For": "10.0.0.1"}
    assert (await client.post("/api/mcp/tools/call", headers=spoofed, json=CALL)).status_code == 403
    proxy, _, settings = make_client(peer="127.0.0.1", allowed_cidrs=["10.0.0.0/8"], trusted_proxies=["127.0.0.1"])
    assert (await proxy.post("/api/mcp/tools/call", headers=spoofed, json=CALL)).status_code == 200
    assert audit_lines(settings)[-1]["client"] == "10.0.0.1"


async def test_token_networks_use_the_effective_client_address(make_client: AppFactory, tmp_path: Path) -> None:
    client, _, _ = make_client(peer="127.0.0.1", trusted_proxies=["127.0.0.1"])
    new = TokenStore(tmp_path / "tokens.json").create(name="lan", scope=Scope.READ, cidrs=["10.0.0.0/8"])
    inside = {**auth(new.secret), "X-Forwarded-For": "10.4.4.4"}
    outside = {**auth(new.secret), "X-Forwarded-For": "172.16.0.1"}
    assert (await client.post("/api/mcp/tools/call", headers=inside, json=CALL)).status_code == 200
    response = await client.post("/api/mcp/tools/call", headers=outside, json=CALL)
    assert response.status_code == 403 and "address" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/mcp", "/api/mcp/tools/call", "/api/mcp/tools/list"])
async def test_foreign_origins_get_403_and_foreign_hosts_421(make_client: AppFactory, path: str) -> None:
    client, bus, _ = make_client()
    response = await client.post(path, headers={**auth(), "Origin": "https://evil.example"}, json=CALL)
    assert response.status_code == 403 and "Origin" in response.json()["error"]["message"]
    response = await client.post(path, headers={**auth(), "Host": "evil.example:8080"}, json=CALL)
    assert response.status_code == 421
    ok = await client.post("/api/mcp/tools/list", headers={**auth(), "Origin": "http://localhost:8080"})
    assert ok.status_code == 200
    assert bus.sent == []


async def test_configured_hosts_and_origins_are_accepted(make_client: AppFactory) -> None:
    client, _, _ = make_client(allowed_hosts=["mcp.example.org"], allowed_origins=["https://mcp.example.org"])
    headers = {**auth(), "Host": "mcp.example.org", "Origin": "https://mcp.example.org"}
    assert (await client.post("/api/mcp/tools/call", headers=headers, json=CALL)).status_code == 200


async def test_oversized_bodies_get_413_by_length_and_while_streaming(make_client: AppFactory) -> None:
    client, bus, _ = make_client(max_body_bytes=4096)
    big = {"name": "execute_command", "arguments": {"command": "echo " + "a" * 5000}}
    for path in ("/api/mcp/tools/call", "/mcp"):
        assert (await client.post(path, headers=auth(), json=big)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap counts what really arrives
        for _ in range(10):
            yield b"x" * 1000

    response = await client.post("/api/mcp/tools/call", headers={**auth(), "Content-Type": "application/json"},
                                 content=chunks())
    assert response.status_code == 413 and "4096" in response.json()["error"]["message"]
    assert bus.sent == []
    assert (await client.post("/api/mcp/tools/call", headers=auth(), json=CALL)).status_code == 200


async def test_rest_rate_limit_answers_429_with_retry_after(make_client: AppFactory) -> None:
    client, _, _ = make_client(rate_limit="2/m")
    for _ in range(2):
        assert (await client.post("/api/mcp/tools/call", headers=auth(), json=CALL)).status_code == 200
    response = await client.post("/api/mcp/tools/call", headers=auth(), json=CALL)
    assert response.status_code == 429 and int(response.headers["retry-after"]) == 30
    body = response.json()["error"]
    assert body["code"] == "rate_limited" and body["retryable"] and 29 < body["details"]["retry_after"] <= 30


async def test_the_sdk_transport_behind_our_edge_also_refuses_foreign_origins_and_hosts(tmp_path: Path) -> None:
    """Defence in depth: the MCP app on its own (no edge middleware in front) still answers 403/421."""
    settings = GatewaySettings(token=SecretStr(STATIC), state_dir=tmp_path)
    bus = FakeBus()
    executor = ToolExecutor(cast(Any, bus), CallLimits(), build_security(settings))
    gateway = Gateway(settings=settings, bus=cast(Any, bus), executor=executor,
                          state=(state := shared_state_for(settings, lambda: None)),
                          keeper=state_keeper_for(settings, state, lambda: None, "test"),
                      health=HealthMonitor(cast(Any, bus), cluster="default", interval=10, timeout=1))
    app = build_app(settings, gateway=gateway)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with app.state.mcp_server.session_manager.run(), httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app.state.mcp_app), base_url="http://127.0.0.1:8080"
    ) as client:
        foreign = await client.post("/mcp", json=initialize, headers={**headers, "Origin": "http://evil.example"})
        assert foreign.status_code == 403
        wrong_host = await client.post("/mcp", json=initialize, headers={**headers, "Host": "evil.example"})
        assert wrong_host.status_code == 421
        local = await client.post("/mcp", json=initialize, headers={**headers, "Origin": "http://localhost:8080"})
        assert local.status_code == 200
