"""Pagination cursors: every list this server serves (tools, resources, resource templates, prompts) is one page,
so it never hands out a cursor and any cursor a client sends is one it does not know. The MCP spec says such a
cursor SHOULD get -32602 Invalid params; answering the whole list again would hide a client's bug."""

from __future__ import annotations

from typing import Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

PAGINATED_METHODS: Final = frozenset({"tools/list", "resources/list", "resources/templates/list", "prompts/list"})
UNKNOWN_CURSOR: Final = "Invalid params: unknown cursor (this server's lists are single pages and issue no cursor)"


async def refuse_unknown_cursors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware (both protocol eras, HTTP and stdio): -32602 for a list request carrying a cursor."""
    params = ctx.params
    # A notification (no request id) is owed no answer, and raising there would only log a traceback.
    is_request = ctx.request_id is not None
    if is_request and ctx.method in PAGINATED_METHODS and params is not None and params.get("cursor") is not None:
        raise MCPError(code=INVALID_PARAMS, message=UNKNOWN_CURSOR)
    return await call_next(ctx)
