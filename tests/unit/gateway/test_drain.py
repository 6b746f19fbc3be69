"""Draining on SIGTERM: readiness says 503 while calls are still served, then the server stops; without a
delay (one gateway, no load balancer) SIGTERM stops at once, as before."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
import uvicorn
from proxmox_mcp_gateway.app import Gateway, build_app
from proxmox_mcp_gateway.calls import CallLimits, ToolExecutor
from proxmox_mcp_gateway.drain import Drain, DrainingServer
from proxmox_mcp_gateway.health import HealthMonitor
from proxmox_mcp_gateway.security import build_security
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_state import shared_state_for
from proxmox_mcp_gateway.state_wiring import state_keeper_for
from pydantic import SecretStr

from tests.unit.gateway.fakes import FakeBus

TOKEN = "static-" + "d" * 20


def _server(delay: float) -> DrainingServer:
    return DrainingServer(uvicorn.Config(app=cast(Any, None)), Drain(delay))


def test_the_drain_delay_is_three_seconds_behind_a_load_balancer_and_none_alone(tmp_path: Path) -> None:
    assert GatewaySettings(state_dir=tmp_path).drain_seconds() == 0
    assert GatewaySettings(state_dir=tmp_path, state="jetstream").drain_seconds() == 3
    assert GatewaySettings(state_dir=tmp_path, state="jetstream", drain_delay=0).drain_seconds() == 0
    assert GatewaySettings(state_dir=tmp_path, drain_delay=7.5).drain_seconds() == 7.5


async def test_the_first_sigterm_starts_the_drain_and_the_server_stops_when_it_is_over() -> None:
    server = _server(0.05)
    server.handle_exit(signal.SIGTERM, None)
    assert server.drain.draining and not server.should_exit
    assert await server.on_tick(1) is False
    while not server.drain.over():
        pass
    assert await server.on_tick(2) is True and server.should_exit


async def test_a_second_signal_or_no_delay_stops_at_once() -> None:
    server = _server(60)
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    alone = _server(0)
    alone.handle_exit(signal.SIGTERM, None)
    assert alone.should_exit and not alone.drain.draining


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    settings = GatewaySettings(token=SecretStr(TOKEN), state_dir=tmp_path)
    bus = FakeBus()
    executor = ToolExecutor(cast(Any, bus), CallLimits(), build_security(settings))
    state = shared_state_for(settings, lambda: None)
    return Gateway(settings=settings, bus=cast(Any, bus), executor=executor, state=state,
                   keeper=state_keeper_for(settings, state, lambda: None, "test"),
                   health=HealthMonitor(cast(Any, bus), cluster="default", interval=10, timeout=1),
                   drain=Drain(3.0))


async def test_a_draining_gateway_is_not_ready_but_still_serves_calls(gateway: Gateway) -> None:
    app = build_app(gateway.settings, gateway=gateway)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app, client=("127.0.0.1", 40000)),
                                  base_url="http://127.0.0.1:8080") as client:
        assert (await client.get("/health/ready")).status_code == 200
        gateway.drain.start()
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        assert (await client.get("/health")).json()["draining"] is True
        call = await client.post("/api/mcp/tools/call", json={"name": "list_vms", "arguments": {}},
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert call.status_code == 200, call.text
