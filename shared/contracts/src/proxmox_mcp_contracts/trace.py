"""W3C trace context (`traceparent`) for one tool call: taken from the client when it sent one, else new.

The gateway puts it into the request envelope (`trace["traceparent"]`) and the audit record (`trace_id`);
workers put the trace id into their log lines, so one call can be followed across processes."""

from __future__ import annotations

import re
import secrets
from typing import TypeGuard

TRACEPARENT = "traceparent"
_FORMAT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def valid_traceparent(value: object) -> TypeGuard[str]:
    """True for `VERSION-TRACEID-PARENTID-FLAGS` with non-zero ids (version ff is invalid by the spec)."""
    if not isinstance(value, str):
        return False
    match = _FORMAT.match(value.strip().lower())
    return (match is not None and match.group(0)[:2] != "ff"
            and set(match.group(1)) != {"0"} and set(match.group(2)) != {"0"})


def child_traceparent(parent: str | None) -> str:
    """A traceparent for our own span: the parent's trace id when the parent is valid, else a new trace."""
    trace_id = trace_id_of(parent) if valid_traceparent(parent) else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str) -> str:
    return traceparent.strip().lower().split("-")[1]
