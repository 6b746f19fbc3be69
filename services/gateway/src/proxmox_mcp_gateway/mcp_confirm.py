"""How the MCP front end asks the user to confirm a destructive call, in each protocol era.

- Legacy era (initialize handshake): an `elicitation/create` form request on the call's own stream, when the
  client declared the elicitation capability (form mode).
- 2026 era (no server-to-client requests): the call answers `input_required` with the same form; the client
  asks its user and calls again with the answer and our sealed request state (the SDK's RequestStateBoundary
  seals it and binds it to this tool, these exact arguments and this token, with a TTL).
- Otherwise there is no channel and only `confirm: true` confirms.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.session import ServerSession
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from proxmox_mcp_gateway.confirm import Answer, ConfirmationChannel, ConfirmationPending

CONFIRM_KEY = "confirm"
"""The key of our input request, and the state we mint for it (sealed on the wire)."""
CONFIRM_STATE = "pmcp-confirm-v1"

CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "confirm": {"type": "boolean", "title": "Run it",
                    "description": "true to run this destructive call; false to refuse it"},
    },
    "required": ["confirm"],
}


def _answer(result: types.ElicitResult) -> Answer:
    if result.action == "accept":
        content = result.content or {}
        return Answer.ACCEPT if content.get("confirm") is True else Answer.DECLINE
    return Answer.DECLINE if result.action == "decline" else Answer.CANCEL


class ElicitationChannel:
    kind = "elicitation"

    def __init__(self, session: ServerSession, request_id: types.RequestId | None) -> None:
        self.session = session
        self.request_id = request_id

    async def ask(self, message: str) -> Answer:
        result = await self.session.elicit_form(message, CONFIRM_SCHEMA, related_request_id=self.request_id)
        return _answer(result)


class InputRequiredChannel:
    kind = "input_required"

    def __init__(self, answer: types.ElicitResult | None) -> None:
        self.answer = answer

    async def ask(self, message: str) -> Answer:
        if self.answer is None:
            raise ConfirmationPending(message)
        return _answer(self.answer)


def input_required(message: str) -> types.InputRequiredResult:
    request = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message,
                                                                        requested_schema=CONFIRM_SCHEMA))
    return types.InputRequiredResult(input_requests={CONFIRM_KEY: request}, request_state=CONFIRM_STATE)


def _form_capable(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None:
        return False
    # An empty capability (2025-06 clients) means form mode; a client that declares only url mode cannot answer.
    return elicitation.form is not None or elicitation.url is None


def channel_for(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> ConfirmationChannel | None:
    if not _form_capable(ctx):
        return None
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        answer: types.ElicitResult | None = None
        # Only an answer that comes with the state we minted (verified and unsealed by the boundary) counts.
        if params.request_state == CONFIRM_STATE and params.input_responses:
            candidate = params.input_responses.get(CONFIRM_KEY)
            answer = candidate if isinstance(candidate, types.ElicitResult) else None
        return InputRequiredChannel(answer)
    if not ctx.session.can_send_request:
        return None
    return ElicitationChannel(ctx.session, ctx.request_id)


def request_state_boundary(
    server_name: str, principal_of: Callable[[ServerRequestContext[Any, Any]], str | None], keys: list[bytes] | None,
) -> RequestStateBoundary:
    """Seals our input_required state and verifies it on the retry, bound to the caller's token id. Without
    configured keys the key lives in this process only (a retry must reach the same gateway)."""
    security = RequestStateSecurity(keys=keys or [os.urandom(32)], bind_principal=principal_of, ttl=600.0)
    return RequestStateBoundary(security, default_audience=server_name)
