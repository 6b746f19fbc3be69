"""The gateway's HTTP side: requests per endpoint, and requests refused before any tool ran."""

from __future__ import annotations

import time
from collections.abc import Iterable

from proxmox_mcp_runtime.metrics.labels import BoundedLabel, status_class
from proxmox_mcp_runtime.metrics.registry import LATENCY_BUCKETS, counter, histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = counter("proxmox_mcp_http_requests",
                        "HTTP requests the gateway answered, by handler, method and status class.",
                        ["handler", "method", "status_class"])
HTTP_REQUEST_DURATION = histogram("proxmox_mcp_http_request_duration_seconds",
                                  "HTTP request latency in the gateway, by handler.", ["handler"], LATENCY_BUCKETS)
AUTH_FAILURES = counter("proxmox_mcp_auth_failures", "Requests refused before any tool ran (401/403), by reason.",
                        ["reason"])

GATEWAY_HANDLERS = frozenset(
    {"/mcp", "/api/mcp", "/api/mcp/tools/list", "/api/mcp/tools/call", "/health", "/health/ready", "/metrics"}
)
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})
_reason = BoundedLabel(r"[a-z][a-z0-9_]{0,31}", 16)


def count_auth_failure(reason: str) -> None:
    """reason: missing_token, invalid_token, expired, revoked, forbidden_address, forbidden_origin, ..."""
    AUTH_FAILURES.labels(_reason(reason)).inc()


class HttpMetricsMiddleware:
    """Pure ASGI (streams pass through untouched): counts requests and their latency per known handler."""

    def __init__(self, app: ASGIApp, handlers: Iterable[str] = GATEWAY_HANDLERS) -> None:
        self.app = app
        self.handlers = frozenset(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", "")).rstrip("/") or "/"
        handler = path if path in self.handlers else "other"
        method = str(scope.get("method", "GET")).upper()
        status: list[int] = []
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            code = status[0] if status else 500
            HTTP_REQUESTS.labels(handler, method if method in _METHODS else "other", status_class(code)).inc()
            HTTP_REQUEST_DURATION.labels(handler).observe(time.perf_counter() - started)
