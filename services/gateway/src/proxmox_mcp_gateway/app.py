"""build_app(): the gateway's ASGI application (MCP streamable HTTP at /mcp, REST, health)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from mcp.server.transport_security import TransportSecuritySettings
from proxmox_mcp_contracts.errors import ServiceFailure
from proxmox_mcp_runtime.metrics.serve import render_latest

from proxmox_mcp_gateway import __version__
from proxmox_mcp_gateway.admin_rest import ADMIN_PREFIX, build_admin_router
from proxmox_mcp_gateway.audit import AuditLog
from proxmox_mcp_gateway.auth import (
    BearerAuthMiddleware,
    TokenAuthenticator,
    TokenRecord,
    TokenSource,
    digest_secret,
)
from proxmox_mcp_gateway.bus import BusSettings, WorkerBus
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, ToolExecutor
from proxmox_mcp_gateway.conformance_fixtures import FIXTURE, ConformanceFixtures, FixtureTaskSource
from proxmox_mcp_gateway.drain import Drain
from proxmox_mcp_gateway.edge import BodyLimitMiddleware, EdgeMiddleware
from proxmox_mcp_gateway.freeze import GatewayFreeze
from proxmox_mcp_gateway.health import HealthMonitor
from proxmox_mcp_gateway.idempotency import IdempotencyLedger
from proxmox_mcp_gateway.jsonrpc_envelope import JsonRpcEnvelopeMiddleware
from proxmox_mcp_gateway.mcp_server import build_mcp_server
from proxmox_mcp_gateway.method_not_allowed import MethodNotAllowedFallback
from proxmox_mcp_gateway.metrics import (
    HttpMetricsMiddleware,
    count_auth_failure,
    health_listener,
    observe_call,
    observe_nats_request,
    watch_gateway,
)
from proxmox_mcp_gateway.oauth.step_up import ScopeChallenger, ScopeStepUpMiddleware
from proxmox_mcp_gateway.rest import build_rest_router, error_response
from proxmox_mcp_gateway.routing_gate import RoutingHeaderGate
from proxmox_mcp_gateway.security import (
    audit_rejections,
    build_oauth,
    build_security,
    edge_policy,
    register_startup_secrets,
    request_state_keys,
)
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_state import SharedState, shared_state_for
from proxmox_mcp_gateway.state_wiring import StateKeeper, state_keeper_for
from proxmox_mcp_gateway.task_records import TaskRecords
from proxmox_mcp_gateway.task_runs import TaskRuns, TaskSource
from proxmox_mcp_gateway.task_sources import PROXMOX, ProxmoxTaskSource
from proxmox_mcp_gateway.tasks import TaskFollower

log = logging.getLogger(__name__)

PROTECTED_PREFIXES = ("/mcp", "/api/mcp/tools", ADMIN_PREFIX)


@dataclass
class Gateway:
    """Everything the gateway runs, so the CLI and tests can reach the parts."""

    settings: GatewaySettings
    bus: WorkerBus
    executor: ToolExecutor
    health: HealthMonitor
    state: SharedState
    keeper: StateKeeper
    """What PMCP_STATE changes in the call path (token source, audit replica, shared limits) and its start."""
    freeze: GatewayFreeze | None = None
    """The freeze switch (None: not followed, for in-process tests of other parts)."""
    drain: Drain = field(default_factory=lambda: Drain(0.0))
    """Set by SIGTERM (gateway.server): readiness answers 503 while calls are still served."""

    @property
    def security(self) -> CallSecurity:
        return self.executor.security

    @property
    def audit(self) -> AuditLog | None:
        """The audit log; `.failures` / `.healthy` are what the ops side exports as metrics."""
        return self.executor.security.audit


def build_gateway(settings: GatewaySettings) -> Gateway:
    register_startup_secrets(settings)
    bus = WorkerBus(BusSettings(nats_url=settings.nats_url, heartbeat_interval=settings.heartbeat_interval),
                    observer=observe_nats_request)
    state = shared_state_for(settings, lambda: bus.nats_client)
    keeper = state_keeper_for(settings, state, lambda: bus.nats_client, bus.settings.gateway_id)
    clusters = settings.cluster_names()
    limits = CallLimits(
        api_timeout=settings.api_timeout,
        max_command_timeout=settings.max_command_timeout,
        command_grace=settings.command_grace,
        task_poll_interval=settings.task_poll_interval,
        default_cluster=clusters.default,
        clusters=clusters.known,
    )
    security = build_security(settings, observer=observe_call, shared_limiter=keeper.limiter,
                              audit_replica=keeper.audit_replica)
    follower = TaskFollower(bus, poll_interval=settings.task_poll_interval, api_timeout=settings.api_timeout,
                            redactor=security.redactor)
    sources: dict[str, TaskSource] = {PROXMOX: ProxmoxTaskSource(follower)}
    if settings.conformance_fixtures:
        log.warning("PMCP_CONFORMANCE_FIXTURES is set: the conformance suite's test tools are offered")
        sources[FIXTURE] = FixtureTaskSource()
    task_runs = TaskRuns(TaskRecords(state.bucket), sources, ttl=settings.task_ttl,
                         poll_interval_ms=max(100, int(settings.task_poll_interval * 1000)), audit=security.audit,
                         redactor=security.redactor)
    ledger = IdempotencyLedger(state.bucket, retention=settings.idempotency_ttl, wait=settings.idempotency_wait)
    freeze = GatewayFreeze(state, mode=settings.state, nats=lambda: bus.nats_client, audit=security.audit,
                           timing=settings.control_timing())
    executor = ToolExecutor(bus, limits, dataclasses.replace(security, freeze=freeze.guard), follower=follower,
                            ledger=ledger, tasks=task_runs)
    health = HealthMonitor(bus, cluster=clusters.default, interval=settings.probe_interval,
                           timeout=settings.probe_timeout, other_clusters=tuple(clusters.known),
                           listener=health_listener(clusters.default))
    gateway = Gateway(settings=settings, bus=bus, executor=executor, health=health, state=state,
                      keeper=keeper, freeze=freeze, drain=Drain(settings.drain_seconds()))
    watch_gateway(__version__, nats=lambda: bus.nats_client, audit=lambda: gateway.audit)
    return gateway


def fixtures_for(gateway: Gateway) -> ConformanceFixtures | None:
    """The conformance suite's test-only tools, when PMCP_CONFORMANCE_FIXTURES asks for them."""
    if not gateway.settings.conformance_fixtures:
        return None
    return ConformanceFixtures(gateway.executor.task_runs)


def authenticator_from(settings: GatewaySettings, source: TokenSource | None = None) -> TokenAuthenticator:
    """source: where stored tokens come from (the JetStream snapshot); None: the token file."""
    records: list[TokenRecord] = []
    secret = settings.bearer_secret()
    if secret:
        records.append(TokenRecord(token_id="static", digest=digest_secret(secret), scope=settings.token_scope,
                                   command_profile=settings.token_profile))
    return TokenAuthenticator(records, store_path=settings.tokens_path(), source=source)


LOCAL_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")
LOCAL_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", "https://127.0.0.1:*",
                 "https://localhost:*", "https://[::1]:*", "http://127.0.0.1", "http://localhost",
                 "https://127.0.0.1", "https://localhost")


def transport_security(settings: GatewaySettings) -> TransportSecuritySettings:
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=[*LOCAL_HOSTS, *settings.allowed_hosts],
                                     allowed_origins=[*LOCAL_ORIGINS, *settings.allowed_origins])


async def _connect_forever(gateway: Gateway) -> None:
    """Connect to NATS, then load the shared state (JetStream), each retried until it works."""
    delay = 0.1
    while True:
        try:
            await gateway.bus.connect()
            log.info("connected to NATS")
            gateway.health.poke()
            if gateway.freeze is not None:
                await gateway.freeze.on_connected()
            break
        except Exception as exc:
            log.warning("NATS not reachable yet", extra={"error_type": type(exc).__name__, "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    await gateway.keeper.run()


def build_app(settings: GatewaySettings, gateway: Gateway | None = None,
              authenticator: TokenAuthenticator | None = None) -> FastAPI:
    gw = gateway or build_gateway(settings)
    oauth = build_oauth(settings)
    server = build_mcp_server(gw.executor, request_state_keys=request_state_keys(settings),
                              fixtures=fixtures_for(gw))
    security = transport_security(settings)
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security,
                                         max_request_body_size=settings.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None, None]:
        connecting = asyncio.create_task(_connect_forever(gw))
        gw.health.start()
        if gw.freeze is not None:
            gw.freeze.start()
        try:
            async with server.session_manager.run():
                yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting  # a connect under way ends before the bus closes, not after
            await gw.health.stop()
            await gw.keeper.close()
            if gw.freeze is not None:
                await gw.freeze.stop()
            await gw.state.close()
            await gw.bus.close()
            if oauth is not None:
                await oauth.aclose()
            if gw.audit is not None:
                await gw.audit.close()

    app = FastAPI(title="proxmox-mcp gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gw
    app.state.mcp_server = server
    app.state.mcp_app = mcp_app

    @app.get("/health")
    async def health() -> dict[str, Any]:
        report = {**gw.health.report(), "state": gw.keeper.report()}
        if gw.freeze is not None:
            report["freeze"] = gw.freeze.report()
        return {**report, "draining": True} if gw.drain.draining else report

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        await gw.health.refresh_workers()
        checks = {k: gw.health.checks[k].status for k in ("nats", "ssh-worker", "api-worker")}
        checks["state"] = "ok" if gw.keeper.ready() else "loading"
        body: dict[str, Any] = {"ready": gw.health.ready() and gw.keeper.ready() and not gw.drain.draining,
                                "checks": checks}
        if not gw.keeper.ready():
            body["state"] = gw.keeper.report()
        if gw.drain.draining:
            body["draining"] = True
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, media_type = render_latest()
        return Response(body, media_type=media_type)

    @app.exception_handler(ServiceFailure)
    async def service_failure(_request: Any, exc: ServiceFailure) -> JSONResponse:
        return error_response(exc.info)

    app.include_router(build_rest_router(gw.executor))
    if gw.freeze is not None:
        app.include_router(build_admin_router(gw.freeze, gw.security.access, gw.audit))
    app.state.oauth = oauth
    if oauth is not None:  # RFC 9728 protected resource metadata: open, like /health
        for path in oauth.config.metadata_paths:
            app.add_api_route(path, oauth.metadata_endpoint, methods=["GET", "HEAD"], include_in_schema=False)
    # Mounted at the root (after every other route) so /mcp itself is served, not redirected to /mcp/; the
    # fallback answers 405 for a known path asked with the wrong method, which the mount would otherwise take.
    app.mount("/", MethodNotAllowedFallback(mcp_app, routes=lambda: app.router.routes))
    # Starlette runs the middleware added last first: edge (address, allowlist, Host/Origin) -> bearer auth ->
    # routing headers (Mcp-Name: a tool this token may not call, a rate limit) -> body cap -> OAuth step-up (a
    # tool above the token's scope: 403 insufficient_scope) -> JSON-RPC envelope check -> routes.
    # Unauthenticated clients and refused tools are turned away before their body is read.
    on_reject = audit_rejections(gw.audit, on_refused=count_auth_failure)
    app.add_middleware(JsonRpcEnvelopeMiddleware, path="/mcp")
    challenger = None if oauth is None else ScopeChallenger(oauth, read_only=settings.read_only,
                                                            offered=settings.exposed_tools(), on_reject=on_reject)
    if challenger is not None:
        app.add_middleware(ScopeStepUpMiddleware, challenger=challenger)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_reject=on_reject)
    app.add_middleware(RoutingHeaderGate, admission=gw.executor.admission, path="/mcp", on_reject=on_reject,
                       step_up=challenger, observer=observe_call)
    app.add_middleware(BearerAuthMiddleware,
                       authenticator=authenticator or authenticator_from(settings, gw.keeper.token_source),
                       protected_prefixes=PROTECTED_PREFIXES, on_reject=on_reject, oauth=oauth)
    app.add_middleware(EdgeMiddleware, policy=edge_policy(settings, security), on_reject=on_reject)
    app.add_middleware(HttpMetricsMiddleware)
    return app
