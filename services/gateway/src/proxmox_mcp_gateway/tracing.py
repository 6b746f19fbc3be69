"""The trace context of the tool call being served: the client's W3C traceparent (from the MCP request's
`_meta`, which the SDK turns into the current OpenTelemetry span, or from a `traceparent` HTTP header), or a
new trace. Every NATS request made for the call carries it."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

from opentelemetry import trace as otel
from proxmox_mcp_contracts.trace import TRACEPARENT, valid_traceparent

CALL_TRACEPARENT: ContextVar[str | None] = ContextVar("pmcp_call_traceparent", default=None)
"""Our span's traceparent while a tool call runs (set by the executor, read by the bus)."""


def client_traceparent(headers: Mapping[str, str] | None = None) -> str | None:
    """The caller's trace context, if it sent a valid one."""
    span = otel.get_current_span().get_span_context()
    if span.is_valid:
        return f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"
    value = headers.get(TRACEPARENT) if headers is not None else None
    return value.strip().lower() if value is not None and valid_traceparent(value) else None
