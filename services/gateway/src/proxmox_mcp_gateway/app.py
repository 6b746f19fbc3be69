"""build_app(): the gateway's ASGI application (MCP streamable HTTP at /mcp, REST, health)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.transport_security import TransportSecuritySettings
from proxmox_mcp_contracts.errors import ServiceFailure

from proxmox_mcp_gateway.auth import BearerAuthMiddleware, TokenAuthenticator, TokenRecord, digest_secret
from proxmox_mcp_gateway.bus import BusSettings, WorkerBus
from proxmox_mcp_gateway.calls import CallLimits, ToolExecutor
from proxmox_mcp_gateway.health import HealthMonitor
from proxmox_mcp_gateway.mcp_server import build_mcp_server
from proxmox_mcp_gateway.rest import build_rest_router, error_response
from proxmox_mcp_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

PROTECTED_PREFIXES = ("/mcp", "/api/mcp/tools")


@dataclass
class Gateway:
    """Everything the gateway runs, so the CLI and tests can reach the parts."""

    settings: GatewaySettings
    bus: WorkerBus
    executor: ToolExecutor
    health: HealthMonitor


def build_gateway(settings: GatewaySettings) -> Gateway:
    bus = WorkerBus(BusSettings(nats_url=settings.nats_url, heartbeat_interval=settings.heartbeat_interval))
    limits = CallLimits(
        api_timeout=settings.api_timeout,
        max_command_timeout=settings.max_command_timeout,
        command_grace=settings.command_grace,
        task_poll_interval=settings.task_poll_interval,
        default_cluster=settings.default_cluster,
    )
    executor = ToolExecutor(bus, limits)
    health = HealthMonitor(bus, cluster=settings.default_cluster, interval=settings.probe_interval,
                           timeout=settings.probe_timeout)
    return Gateway(settings=settings, bus=bus, executor=executor, health=health)


def authenticator_from(settings: GatewaySettings) -> TokenAuthenticator:
    records: list[TokenRecord] = []
    secret = settings.bearer_secret()
    if secret:
        records.append(TokenRecord(token_id="static", digest=digest_secret(secret), scope=settings.token_scope,
                                   command_profile=settings.token_profile))
    return TokenAuthenticator(records)


def transport_security(settings: GatewaySettings) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", *settings.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "https://127.0.0.1:*", "https://localhost:*",
               *settings.allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


async def _connect_forever(gateway: Gateway) -> None:
    delay = 0.1
    while True:
        try:
            await gateway.bus.connect()
            log.info("connected to NATS")
            gateway.health.poke()
            return
        except Exception as exc:
            log.warning("NATS not reachable yet", extra={"error_type": type(exc).__name__, "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def build_app(settings: GatewaySettings, gateway: Gateway | None = None,
              authenticator: TokenAuthenticator | None = None) -> FastAPI:
    gw = gateway or build_gateway(settings)
    server = build_mcp_server(gw.executor)
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=transport_security(settings))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        connecting = asyncio.create_task(_connect_forever(gw))
        gw.health.start()
        try:
            async with server.session_manager.run():
                yield
        finally:
            connecting.cancel()
            await gw.health.stop()
            await gw.bus.close()

    app = FastAPI(title="proxmox-mcp gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gw

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return gw.health.report()

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        await gw.health.refresh_workers()
        body = {"ready": gw.health.ready(), "checks": {k: gw.health.checks[k].status
                                                        for k in ("nats", "ssh-worker", "api-worker")}}
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.exception_handler(ServiceFailure)
    async def service_failure(_request: Any, exc: ServiceFailure) -> JSONResponse:
        return error_response(exc.info)

    app.include_router(build_rest_router(gw.executor))
    # Mounted at the root (after every other route) so /mcp itself is served, not redirected to /mcp/.
    app.mount("/", mcp_app)
    app.add_middleware(BearerAuthMiddleware, authenticator=authenticator or authenticator_from(settings),
                       protected_prefixes=PROTECTED_PREFIXES)
    return app
