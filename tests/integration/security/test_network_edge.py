"""The network edge on a real gateway: IP allowlist, X-Forwarded-For only from the proxy, Origin/Host, body cap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.security.conftest import OUTSIDER, PROXY, SecureStack

LIST = {"name": "list_vms", "arguments": {}}


def post(stack: SecureStack, token: str, *, source: str = "127.0.0.1", path: str = "/api/mcp/tools/call",
         body: Any = LIST, **headers: str) -> httpx2.Response:
    transport = httpx2.HTTPTransport(local_address=source)
    with httpx2.Client(transport=transport, timeout=30) as client:
        return client.post(f"{stack.gateway.base_url}{path}", json=body,
                           headers={"Authorization": f"Bearer {token}", **headers})


def test_an_address_outside_the_allowlist_gets_403_even_with_a_valid_token(stack: SecureStack) -> None:
    token = stack.token(Scope.ADMIN)
    for path in ("/api/mcp/tools/call", "/mcp", "/api/mcp/tools/list"):
        response = post(stack, token, source=OUTSIDER, path=path)
        assert response.status_code == 403, response.text
        assert "allowlist" in response.json()["error"]["message"]
    assert post(stack, token).status_code == 200
    refused = [e for e in stack.audit() if e.get("client") == OUTSIDER]
    assert refused and refused[-1]["result"] == "permission_denied"


def test_a_spoofed_forwarded_for_from_a_non_proxy_address_is_ignored(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    response = post(stack, token, source=OUTSIDER, **{"X-Forwarded-For": "10.0.0.1"})
    assert response.status_code == 403
    assert stack.audit()[-1]["client"] == OUTSIDER


def test_forwarded_for_from_the_trusted_proxy_decides_the_client_address(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    assert post(stack, token, source=PROXY, **{"X-Forwarded-For": "10.20.30.40"}).status_code == 200
    assert stack.audit()[-1]["client"] == "10.20.30.40"
    # The proxy forwards a client outside the allowlist: refused like a direct one.
    assert post(stack, token, source=PROXY, **{"X-Forwarded-For": "192.168.9.9"}).status_code == 403
    # A client-supplied hop in front of the real one changes nothing: the right-most untrusted hop counts.
    assert post(stack, token, source=PROXY, **{"X-Forwarded-For": "10.0.0.1, 192.168.9.9"}).status_code == 403


def test_token_networks_are_checked_against_the_effective_client(stack: SecureStack) -> None:
    token = stack.token(Scope.READ, cidrs=["10.0.0.0/8"])
    direct = post(stack, token)
    assert direct.status_code == 403 and "address" in direct.json()["error"]["message"]
    assert post(stack, token, source=PROXY, **{"X-Forwarded-For": "10.1.1.1"}).status_code == 200


def test_a_foreign_origin_gets_403_on_mcp_and_rest(stack: SecureStack) -> None:
    token = stack.token(Scope.READ)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for path, body in (("/mcp", initialize), ("/api/mcp/tools/call", LIST), ("/api/mcp/tools/list", {})):
        response = post(stack, token, path=path, body=body, Origin="https://evil.example",
                        Accept="application/json, text/event-stream")
        assert response.status_code == 403, (path, response.text)
    response = post(stack, token, path="/mcp", body=initialize, Host="evil.example",
                    Accept="application/json, text/event-stream")
    assert response.status_code == 421
    ok = post(stack, token, path="/mcp", body=initialize, Origin=f"{stack.gateway.base_url}",
              Accept="application/json, text/event-stream")
    assert ok.status_code == 200, ok.text


def test_an_oversized_body_gets_413_by_declared_length_and_while_streaming(stack: SecureStack) -> None:
    token = stack.token(Scope.EXEC)
    big = {"name": "execute_command", "arguments": {"command": "echo " + "a" * (1024 * 1024)}}
    for path in ("/api/mcp/tools/call", "/mcp"):
        response = post(stack, token, path=path, body=big, Accept="application/json, text/event-stream")
        assert response.status_code == 413, (path, response.status_code)

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to trust
        for _ in range(40):
            yield b"x" * 32768

    with httpx2.Client(timeout=30) as client:
        response = client.post(f"{stack.gateway.base_url}/api/mcp/tools/call", content=chunks(),
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["details"]["limit"] == 1024 * 1024
    assert post(stack, token).status_code == 200
