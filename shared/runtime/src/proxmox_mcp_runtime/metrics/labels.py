"""Label values from outside mapped onto small, bounded sets, so no caller can grow the number of series."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from proxmox_mcp_contracts.errors import ErrorCode

OK = "ok"
OTHER = "other"
CODES = frozenset({OK, *(code.value for code in ErrorCode)})
"""Outcome codes of a request: 'ok' or an ErrorCode value."""


class BoundedLabel:
    """Values matching a pattern pass, at most `limit` distinct ones; anything else becomes "other"."""

    def __init__(self, pattern: str, limit: int) -> None:
        self._pattern = re.compile(pattern)
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = str(value)
        if text in self._seen:
            return text
        if not self._pattern.fullmatch(text):
            return OTHER
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
        return text


class ClosedLabel:
    """A fixed vocabulary; anything else becomes "other"."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(values)

    def __call__(self, value: object) -> str:
        text = str(value)
        return text if text in self.values else OTHER


cluster_label = BoundedLabel(r"[a-z0-9][a-z0-9_-]{0,62}", 32)
kind_label = ClosedLabel(("ssh", "api"))
op_label = BoundedLabel(r"[a-z][a-z0-9_]{0,47}", 64)
code_label = ClosedLabel(CODES)


def status_class(status: int | None) -> str:
    """'2xx'..'5xx' for an HTTP status; 'error' when no HTTP answer came (connect, TLS, timeout)."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"
