"""The gateway's use of the 2026 routing headers: a `tools/call` whose `Mcp-Name` names a tool the token may not
call, or that a rate limit refuses, is answered before its body is read (the body may be large; nothing of it is
parsed, nothing reaches a worker).

There is no JSON-RPC id to answer yet, so the answer is the HTTP status of the refusal (403 permission denied,
429 rate limited with Retry-After) with a JSON-RPC error whose id is null, as the Streamable HTTP transport
answers its other pre-body refusals (a foreign Origin, a version it does not serve). Its code is the gateway's
own REFUSED_BY_GATEWAY, outside the range JSON-RPC and MCP reserve; data is our error object
{code, message, retryable, details}. The official client surfaces it as an MCPError of the call.

The headers are trusted only to refuse, never to allow: the call itself is checked again in full from its body,
and the SDK rejects a 2026-era request whose Mcp-Name differs from its body (-32020 HeaderMismatch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final, Protocol

from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, decode_header_value
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from starlette.types import ASGIApp, Receive, Scope, Send

from proxmox_mcp_gateway.auth import CALLER_STATE_KEY
from proxmox_mcp_gateway.edge import RejectHook, client_address

REFUSED_BY_GATEWAY: Final = -31000
"""JSON-RPC error code of a call the gateway refused from its routing headers (data.code says why)."""

Admission = Callable[[str, Caller], ServiceFailure | None]
RefusalObserver = Callable[[str, str, float, dict[str, Any]], None]
"""(tool, error code, seconds, details): a refused call counted like one the executor refused (the metrics hook)."""


class StepUp(Protocol):
    """OAuth step-up (oauth.step_up.ScopeChallenger): answers a tool above an OAuth token's scope with 403
    insufficient_scope and its WWW-Authenticate challenge instead of our refusal."""

    async def answer(self, scope: Scope, send: Send, caller: object, tool: str | None) -> bool: ...

_METHOD: Final = MCP_METHOD_HEADER.encode()
_NAME: Final = MCP_NAME_HEADER.encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _caller(scope: Scope) -> Caller | None:
    """The caller BearerAuthMiddleware put in the request state (None: not authenticated)."""
    state: dict[str, Any] = scope.get("state") or {}
    caller = state.get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


def refusal_body(failure: ServiceFailure) -> bytes:
    info = failure.info
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": REFUSED_BY_GATEWAY, "message": info.as_text(),
        "data": info.model_dump(mode="json")}}).encode()


class RoutingHeaderGate:
    def __init__(self, app: ASGIApp, admission: Admission, path: str = "/mcp",
                 on_reject: RejectHook | None = None, step_up: StepUp | None = None,
                 observer: RefusalObserver | None = None) -> None:
        self.app = app
        self.admission = admission
        self.path = path
        self.on_reject = on_reject
        self.step_up = step_up
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path") == self.path:
            failure = self._refusal(scope)
            if failure is not None:
                if not (failure.code is ErrorCode.PERMISSION_DENIED and self.step_up is not None and await
                        self.step_up.answer(scope, send, _caller(scope), decode_header_value(_header(scope, _NAME)))):
                    await self._refuse(scope, send, failure)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ServiceFailure | None:
        if _header(scope, _METHOD) != "tools/call":
            return None
        name = decode_header_value(_header(scope, _NAME))
        caller = _caller(scope)
        if not name or caller is None:
            return None
        return self.admission(name, caller)

    async def _refuse(self, scope: Scope, send: Send, failure: ServiceFailure) -> None:
        info = failure.info
        if self.observer is not None:  # a tool call refused here counts as one (calls, 429s by limit)
            self.observer(decode_header_value(_header(scope, _NAME)) or "", info.code.value, 0.0, dict(info.details))
        if self.on_reject is not None:
            caller = _caller(scope)
            refused = info.model_copy(update={"details": {**info.details, "reason": "routing_header_refused"}})
            await self.on_reject(scope, refused, client_address(scope), caller.token_id if caller else None)
        body = refusal_body(failure)
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                              (b"content-length", str(len(body)).encode()),
                                              (b"connection", b"close")]
        retry_after: Any = info.details.get("retry_after")
        if info.code is ErrorCode.RATE_LIMITED and isinstance(retry_after, int | float):
            headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
        await send({"type": "http.response.start", "status": info.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
