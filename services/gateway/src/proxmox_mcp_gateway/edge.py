"""The network edge of the gateway: client address (X-Forwarded-For from trusted proxies only), IP allowlist,
Host/Origin validation (DNS rebinding) and the request body cap. Plain ASGI middleware, no framework."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from proxmox_mcp_runtime.networks import IpAddress, IpNetwork, address_in, parse_address
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLIENT_STATE_KEY = "pmcp_client"
"""scope['state'][CLIENT_STATE_KEY]: the effective client address the gateway decided on."""

RejectHook = Callable[[Scope, ErrorInfo, "str | None", "str | None"], Awaitable[None]]
"""(ASGI scope, the error answered, client address, token id if known): called for every refused request.
info.details["reason"] says why in a metrics-label form (missing_token, invalid_token, expired, revoked,
forbidden_address, address_not_allowed, forbidden_host, forbidden_origin, body_too_large)."""


def _ip(text: str) -> IpAddress | None:
    """An address as it appears in a peer or X-Forwarded-For hop: `v4`, `v4:port`, `v6` or `[v6]:port`."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    return parse_address(text)


def effective_client(peer: str | None, forwarded_for: list[str], trusted_proxies: tuple[IpNetwork, ...]) -> str | None:
    """The client address: the peer, unless the peer is a trusted proxy; then the right-most X-Forwarded-For hop
    that is not itself a trusted proxy. A malformed hop ends the walk at the last proxy (never trusts it)."""
    if peer is None:
        return None
    current = _ip(peer)
    if current is None or not trusted_proxies or not address_in(current, trusted_proxies):
        return str(current) if current is not None else peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break
        current = address
        if not address_in(address, trusted_proxies):
            break
    return str(current)


def client_address(scope: Scope) -> str | None:
    """The effective client address set by EdgeMiddleware, else the raw peer."""
    state: Mapping[str, Any] = scope.get("state") or {}
    if CLIENT_STATE_KEY in state:
        return state[CLIENT_STATE_KEY]
    client = scope.get("client")
    return client[0] if client else None


def _matches(value: str, allowed: tuple[str, ...]) -> bool:
    """Exact match, or `base:*` for any port (the MCP SDK's rule)."""
    return value in allowed or any(a.endswith(":*") and value.startswith(a[:-1]) for a in allowed)


@dataclass(frozen=True)
class EdgePolicy:
    allowed_networks: tuple[IpNetwork, ...] = ()
    """Client networks allowed to reach anything but the exempt paths; empty = any address."""
    trusted_proxies: tuple[IpNetwork, ...] = ()
    """Peers whose X-Forwarded-For is believed (Caddy's address)."""
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    checked_prefixes: tuple[str, ...] = ("/mcp", "/api/mcp")
    """Paths whose Host and Origin headers are validated (DNS-rebinding protection)."""
    exempt_paths: tuple[str, ...] = ("/health", "/health/ready")
    """Answered for any address: liveness probes come from wherever the orchestrator runs."""


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


class EdgeMiddleware:
    """Decides the client address, then refuses foreign addresses (403), Hosts (421) and Origins (403)."""

    def __init__(self, app: ASGIApp, policy: EdgePolicy, on_reject: RejectHook | None = None) -> None:
        self.app = app
        self.policy = policy
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the gateway serves no websockets: refuse before anything looks at it
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        peer = scope.get("client")
        forwarded = [v.decode("latin-1") for k, v in headers if k.lower() == b"x-forwarded-for"]
        address = effective_client(peer[0] if peer else None, forwarded, self.policy.trusted_proxies)
        scope.setdefault("state", {})[CLIENT_STATE_KEY] = address
        path: str = scope.get("path", "")
        refusal = self._refusal(path, address, headers)
        if refusal is not None:
            status, info = refusal
            if self.on_reject is not None:
                await self.on_reject(scope, info, address, None)
            await send_json_error(send, info, status=status)
            return
        await self.app(scope, receive, send)

    def _refusal(
        self, path: str, address: str | None, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, ErrorInfo] | None:
        policy = self.policy
        allowed = not policy.allowed_networks or address_in(_ip(address) if address else None, policy.allowed_networks)
        if not allowed and not _under(path, policy.exempt_paths):
            return 403, ErrorInfo(code=ErrorCode.PERMISSION_DENIED,
                                  message="your address is not in this server's allowlist",
                                  details={"reason": "address_not_allowed"})
        if _under(path, policy.checked_prefixes):
            host = _header(headers, b"host")
            if host is None or not _matches(host, policy.allowed_hosts):
                # 421 like the MCP SDK's own check; the status table has no code for it, so the body says 403.
                return 421, ErrorInfo(code=ErrorCode.PERMISSION_DENIED,
                                      message="the Host header is not one this server answers to",
                                      details={"reason": "forbidden_host"})
            origin = _header(headers, b"origin")
            if origin is not None and not _matches(origin, policy.allowed_origins):
                return 403, ErrorInfo(code=ErrorCode.PERMISSION_DENIED,
                                      message="requests from this Origin are not allowed",
                                      details={"reason": "forbidden_origin"})
        return None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyLimitMiddleware:
    """413 for bodies past max_bytes: the declared Content-Length is checked first, then the bytes really
    received are counted (chunked or lying clients), before the app sees any of it."""

    def __init__(self, app: ASGIApp, max_bytes: int, on_reject: RejectHook | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope.get("headers", []), b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete: nothing to answer
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._too_large(scope, send)
                return
            if not message.get("more_body", False):
                break
        cached: deque[Message] = deque([{"type": "http.request", "body": bytes(body), "more_body": False}])

        async def replay() -> Message:
            return cached.popleft() if cached else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        info = ErrorInfo(code=ErrorCode.INVALID_ARGUMENT,
                         message=f"request body larger than {self.max_bytes} bytes",
                         details={"limit": self.max_bytes, "reason": "body_too_large"})
        if self.on_reject is not None:
            await self.on_reject(scope, info, client_address(scope), None)
        await send_json_error(send, info, status=413, extra=[(b"connection", b"close")])


async def send_json_error(send: Send, info: ErrorInfo, *, status: int | None = None,
                          extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """A complete JSON error response in the REST error shape, straight from ASGI middleware."""
    body = json.dumps({"isError": True, "error": info.model_dump(mode="json"),
                       "content": [{"type": "text", "text": info.as_text()}]}).encode()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode()), *(extra or [])]
    start: dict[str, Any] = {"type": "http.response.start", "status": status or info.http_status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
