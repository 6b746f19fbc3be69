# pyright: strict
"""Step-up authorization (MCP authorization spec, "Scope Challenge Handling"): an OAuth caller who calls a tool
above its token's scope gets HTTP 403 `insufficient_scope` naming the scope that tool needs, so its client can
ask the provider for a token with more scope and send the call again. Our own tokens are left to the tool error
(`permission_denied`) they always got: no provider could give them more.

Only the tool's base scope is checked here; what the arguments add (a proxmox_api write, a command profile)
stays with the call path, which answers it as a tool error.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, cast

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from proxmox_mcp_gateway.auth import CALLER_STATE_KEY
from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME
from proxmox_mcp_gateway.edge import RejectHook, client_address, send_json_error
from proxmox_mcp_gateway.oauth.principal import OAuthPrincipal
from proxmox_mcp_gateway.oauth.resource_server import OAuthResourceServer, www_authenticate

MCP_PATH = "/mcp"
REST_CALL_PATH = "/api/mcp/tools/call"


def called_tool(path: str, body: bytes) -> str | None:
    """The tool a POST body calls: a JSON-RPC `tools/call` on /mcp, or the REST call's `name`."""
    try:
        message: object = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    fields = cast("dict[str, Any]", message)
    if path == MCP_PATH:
        params = fields.get("params")
        if fields.get("method") != "tools/call" or not isinstance(params, dict):
            return None
        fields = cast("dict[str, Any]", params)
    name = fields.get("name")
    return name if isinstance(name, str) else None


class ScopeChallenger:
    """Answers an OAuth caller's call of a tool above its token's scope with the step-up challenge. Shared by the
    body check below and the routing-header gate (a 2026-era call names its tool in Mcp-Name, so it is answered
    before its body is read)."""

    def __init__(self, oauth: OAuthResourceServer, *, read_only: bool = False,
                 offered: frozenset[str] | None = None, on_reject: RejectHook | None = None) -> None:
        self.oauth = oauth
        self.read_only = read_only
        """In read-only mode no token gets more than read: a bigger token would not help, so no challenge."""
        self.offered = offered
        """The tools this deployment offers (None: all); others are unknown to every token alike."""
        self.on_reject = on_reject

    def applies(self, caller: object) -> bool:
        return isinstance(caller, OAuthPrincipal) and not self.read_only

    async def answer(self, scope: AsgiScope, send: Send, caller: object, tool: str | None) -> bool:
        """Send the challenge and say True when the caller is an OAuth caller whose token is below the tool's
        scope; False (nothing sent) otherwise."""
        spec = TOOLS_BY_NAME.get(tool or "")
        if (not isinstance(caller, OAuthPrincipal) or self.read_only or spec is None
                or (self.offered is not None and spec.name not in self.offered) or caller.scope.includes(spec.scope)):
            return False
        await self._challenge(scope, send, caller, spec.name, spec.scope)
        return True

    async def _challenge(self, scope: AsgiScope, send: Send, caller: OAuthPrincipal, tool: str,
                         needed: Scope) -> None:
        grant = self.oauth.config.scope_for(needed)
        message = f"{tool} needs scope {needed.value}; this token has {caller.scope.value}"
        info = ErrorInfo(code=ErrorCode.PERMISSION_DENIED, message=f"{message} (ask for {grant})",
                         details={"reason": "insufficient_scope", "scope": grant})
        if self.on_reject is not None:
            await self.on_reject(scope, info, client_address(scope), caller.token_id)
        challenge = www_authenticate(error="insufficient_scope", description=message, scope=grant,
                                     metadata_url=self.oauth.config.metadata_url)
        await send_json_error(send, info, status=403, extra=[(b"www-authenticate", challenge)])


class ScopeStepUpMiddleware:
    """The body check: the tool named in a POST body (a legacy-era call, or REST), after the body cap."""

    def __init__(self, app: ASGIApp, challenger: ScopeChallenger) -> None:
        self.app = app
        self.challenger = challenger

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        state = cast("dict[str, object]", scope.get("state") or {})
        caller = state.get(CALLER_STATE_KEY)
        path = scope.get("path")
        if (scope["type"] != "http" or scope.get("method") != "POST" or path not in (MCP_PATH, REST_CALL_PATH)
                or not self.challenger.applies(caller)):
            await self.app(scope, receive, send)
            return
        messages: deque[Message] = deque()
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if await self.challenger.answer(scope, send, caller, called_tool(path, bytes(body))):
            return

        async def replay() -> Message:
            return messages.popleft() if messages else await receive()

        await self.app(scope, replay, send)
