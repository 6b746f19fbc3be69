"""The trace context a client sent with a tool call: its W3C traceparent from the MCP request's `_meta` (which
the SDK turns into the current OpenTelemetry span) or from a `traceparent` HTTP header. The front end hands it
to the executor, which makes its own span in that trace and passes it to every NATS request of the call."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace as otel
from proxmox_mcp_contracts.trace import TRACEPARENT, valid_traceparent


def client_traceparent(headers: Mapping[str, str] | None = None) -> str | None:
    """The caller's trace context, if it sent a valid one."""
    span = otel.get_current_span().get_span_context()
    if span.is_valid:
        return f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"
    value = headers.get(TRACEPARENT) if headers is not None else None
    return value.strip().lower() if value is not None and valid_traceparent(value) else None
