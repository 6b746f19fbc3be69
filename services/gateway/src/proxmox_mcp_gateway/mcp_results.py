"""Tool results in MCP's form: a structured result with its text, or a tool error (isError)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from proxmox_mcp_contracts.errors import ErrorInfo


def error_result(info: ErrorInfo, extra_text: str | None = None) -> types.CallToolResult:
    """A tool error. rate_limited travels this way too (details.retry_after), not as HTTP 429 on /mcp: the
    official client turns a non-2xx POST into an opaque JSON-RPC 'Server returned an error response' and drops
    Retry-After, while a tool error reaches the model with the code and the wait, keeps the session, and works
    the same over stdio, which has no HTTP status at all. extra_text follows the code line (e.g. the rendering of
    a finished task whose exit status was not OK)."""
    structured: dict[str, Any] = {"code": info.code.value, "message": info.message, "retryable": info.retryable}
    if info.details:
        structured["details"] = info.details
    text = info.as_text() + (f"\n\n{extra_text}" if extra_text else "")
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured,
                                is_error=True)


def tool_result(result: dict[str, Any], text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=result)


def wire(result: types.CallToolResult) -> dict[str, Any]:
    """The result as it travels (camelCase keys), e.g. inlined in a finished task."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)
