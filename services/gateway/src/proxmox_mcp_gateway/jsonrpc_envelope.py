"""The JSON-RPC envelope check for legacy-era POSTs on /mcp, before the MCP SDK reads them.

Workarounds for two bugs of the SDK's legacy transport (mcp 2.3, `server/streamable_http.py`); drop this module
when the SDK has fixed both (the 2026-era entry, `server/_streamable_http_modern.py`, already answers them so):

- python-sdk#3557: JSON that is no JSON-RPC message (a batch array, a bare string or null, `"jsonrpc": "1.0"`, a
  request without `method`, `params` as an array) is answered -32602 with pydantic's whole validation report: the
  caller's input echoed back, internal type names, the pydantic version and its documentation URL. Here it gets
  -32600 Invalid Request with one short sentence (-32700 for a body that is not JSON at all).
- python-sdk#2057: a request whose `id` is neither a string nor an integer (null, true, 1.5, an object) falls
  through to the notification model, gets 202 and is never executed, answered or audited. Here it gets -32600.

Every valid message (request, notification, or a response to a server request) reaches the SDK unchanged.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Final

import pydantic_core
from mcp.server.streamable_http import CONTENT_TYPE_JSON
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCNotification, jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOT_JSON: Final = ErrorData(code=PARSE_ERROR, message="Parse error: the body is not valid JSON")
NOT_A_MESSAGE: Final = ErrorData(
    code=INVALID_REQUEST,
    message="Invalid Request: the body must be a single JSON-RPC 2.0 request, notification or response object",
)
BAD_ID: Final = ErrorData(code=INVALID_REQUEST, message="Invalid Request: a request id must be a string or an integer")

_VERSION_HEADER: Final = MCP_PROTOCOL_VERSION_HEADER.lower().encode("ascii")


def envelope_problem(body: bytes) -> ErrorData | None:
    """What is wrong with a POSTed body as one JSON-RPC message, or None when the SDK may have it. Parsed and
    validated exactly as the SDK's legacy transport does, so the two never disagree on what is valid."""
    try:
        decoded = pydantic_core.from_json(body)
    except (ValueError, RecursionError):
        return NOT_JSON
    try:
        message = jsonrpc_message_adapter.validate_python(decoded, by_name=False)
    except ValidationError:
        return NOT_A_MESSAGE
    # JSON-RPC 2.0 §4.1: a notification is a request *without* an id member. The notification model ignores
    # unknown keys, so a request whose id has a wrong type validates as one (python-sdk#2057).
    if isinstance(message, JSONRPCNotification) and isinstance(decoded, dict) and "id" in decoded:
        return BAD_ID
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)


def _legacy_era(scope: Scope) -> bool:
    """The SDK's own era routing (streamable_http_manager): no MCP-Protocol-Version header, or a handshake-era
    one, goes to the legacy transport; anything else to the 2026-era entry, which checks bodies itself."""
    version = _header(scope, _VERSION_HEADER)
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


def _declares_json(scope: Scope) -> bool:
    """The SDK's Content-Type rule: other bodies get its 415, not a verdict on their content."""
    content_type = _header(scope, b"content-type") or ""
    return any(part.strip() == CONTENT_TYPE_JSON for part in content_type.split(";")[0].split(","))


class JsonRpcEnvelopeMiddleware:
    """Answers a legacy-era POST on `path` whose body is not one valid JSON-RPC message with a short JSON-RPC
    error (HTTP 400, id null); passes everything else through with its body replayed."""

    def __init__(self, app: ASGIApp, path: str = "/mcp") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != self.path
                or not _legacy_era(scope) or not _declares_json(scope)):
            await self.app(scope, receive, send)
            return
        messages: deque[Message] = deque()
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see that as it would have
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                problem = envelope_problem(bytes(body))
                if problem is not None:
                    await _send_error(send, problem)
                    return
                break

        async def replay() -> Message:
            return messages.popleft() if messages else await receive()

        await self.app(scope, replay, send)


async def _send_error(send: Send, error: ErrorData) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None,
                       "error": error.model_dump(mode="json", exclude_none=True)}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
