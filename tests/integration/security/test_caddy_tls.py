"""Real Caddy with the repo's Caddyfile in front of the gateway: TLS from its local CA, streaming intact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.security.conftest import SecureStack
from tests.support.caddy import REPO_CADDYFILE, CaddyProc, start_caddy, validate_caddyfile
from tests.support.mcp_client import http_client
from tests.support.services import GatewayProc


def test_the_repo_caddyfile_validates_for_local_and_real_domains(tmp_path: Path) -> None:
    for env in ({}, {"PMCP_DOMAIN": "mcp.example.org", "PMCP_UPSTREAM": "127.0.0.1:8080"},
                {"PMCP_DOMAIN": "mcp.lan", "PMCP_CADDY_SITE_OPTIONS": "tls internal"}):
        result = validate_caddyfile(REPO_CADDYFILE, tmp_path / "home", env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Valid configuration" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def behind_caddy(stack: SecureStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProc,
                                                                                                  CaddyProc]]:
    gateway = stack.start_gateway("behind-caddy", {"PMCP_TRUSTED_PROXIES": "127.0.0.1"})
    caddy = start_caddy(tmp_path_factory.mktemp("caddy"), gateway.base_url.removeprefix("http://"))
    stack.procs.append(caddy.proc)
    try:
        yield gateway, caddy
    finally:
        caddy.proc.stop()
        gateway.proc.stop()


def _qemu_guest(stack: SecureStack) -> dict[str, Any]:
    response = httpx2.get(f"{stack.sim.api_url}/cluster/resources", params={"type": "vm"}, timeout=10,
                          headers={"Authorization": stack.sim.admin_token["header"]}, verify=stack.sim.ssl_context())
    return next(g for g in response.json()["data"] if g["type"] == "qemu" and not g.get("template"))


async def test_mcp_over_https_through_caddy_streams_progress_before_the_result(
    stack: SecureStack, behind_caddy: tuple[GatewayProc, CaddyProc]
) -> None:
    gateway, caddy = behind_caddy
    token = stack.token(Scope.OPERATE)
    guest = _qemu_guest(stack)
    action = "start" if guest["status"] == "stopped" else "stop"
    progress_at: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progress_at.append(time.monotonic())

    async with http_client(f"{caddy.url}/mcp", token, verify=caddy.ssl_context()) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "vm_action" in names and "execute_command" not in names
        started = time.monotonic()
        # confirm: a stop is destructive and this client cannot ask its user (no elicitation).
        result = await client.call_tool("vm_action", {"vmid": guest["vmid"], "action": action, "wait": True,
                                                      "confirm": True},
                                        progress_callback=on_progress)
        finished = time.monotonic()
    assert not result.is_error, result.content
    assert result.structured_content is not None and result.structured_content["waited"] is True
    assert result.structured_content["task"]["status"] == "stopped"
    assert progress_at, "no progress notification came through Caddy"
    # The task runs ~0.6 s: the first notification must have arrived well before the final result did.
    assert progress_at[0] - started < finished - started - 0.2, (progress_at[0] - started, finished - started)


def test_caddy_sets_security_headers_hides_metrics_and_replaces_forwarded_for(
    stack: SecureStack, behind_caddy: tuple[GatewayProc, CaddyProc]
) -> None:
    gateway, caddy = behind_caddy
    token = stack.token(Scope.READ)
    with httpx2.Client(verify=caddy.ssl_context(), timeout=30) as client:
        health = client.get(f"{caddy.url}/health")
        assert health.status_code == 200
        for header in ("strict-transport-security", "x-content-type-options", "x-frame-options",
                       "content-security-policy", "referrer-policy"):
            assert header in health.headers, header
        assert "server" not in health.headers
        assert client.get(f"{caddy.url}/metrics").status_code == 404
        spoofed = client.post(f"{caddy.url}/api/mcp/tools/call", json={"name": "list_vms"},
                              headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "10.66.66.66"})
        assert spoofed.status_code == 200
    audit = (stack.workdir / "behind-caddy" / "audit.jsonl").read_text().splitlines()
    assert '"client":"127.0.0.1"' in audit[-1] and "10.66.66.66" not in audit[-1]
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{caddy.url}/health", timeout=5)  # a client that does not trust Caddy's CA gets no answer
