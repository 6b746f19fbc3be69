"""405 for a known path asked with the wrong HTTP method.

The MCP app is mounted at "/" (so /mcp is served without a redirect to /mcp/) and a mount takes every request
no route matched fully, so `DELETE /health` or `GET /api/mcp/tools/call` reached the MCP app and got its 404.
Wrapping that app, this answers such requests with 405 and an Allow header listing the methods the path takes;
paths no route knows still go to the MCP app (its own 405 for /mcp, 404 for anything else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from proxmox_mcp_gateway.edge import send_json_error

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods the routes (mounts aside) take on the scope's path when one of them knows the path but not the
    method; empty otherwise. Asks each route through `matches` only: FastAPI keeps included routers behind a
    route of its own that lists no methods."""
    others = [route for route in routes if not isinstance(route, Mount)]
    if not any(route.matches(scope)[0] is Match.PARTIAL for route in others):
        return []
    return [method for method in HTTP_METHODS
            if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in others)]


class MethodNotAllowedFallback:
    """The app mounted at "/", wrapped: `routes` is read per request, so routes added later count too."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = allowed_methods(self.routes(), scope) if scope["type"] == "http" else []
        if not allowed:
            await self.app(scope, receive, send)
            return
        info = ErrorInfo(code=ErrorCode.INVALID_ARGUMENT,
                         message="this path does not take that HTTP method; the Allow header lists the ones it takes",
                         details={"allow": allowed})
        await send_json_error(send, info, status=405, extra=[(b"allow", ", ".join(allowed).encode())])
