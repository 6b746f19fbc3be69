"""Injected latency and errors per API path, set from the command line or at run time."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts.json_values import is_object

from proxmox_mcp_pve_sim.errors import ApiError

DEFAULT_MESSAGE = "simulated failure (pve-sim fault injection)"


class FaultRuleError(ValueError):
    """A rule that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class FaultRule:
    path: re.Pattern[str]
    method: str | None = None
    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int = 500
    message: str = DEFAULT_MESSAGE

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path.search(path) is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path.pattern,
            "method": self.method,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "status": self.status,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> FaultRule:
        if not is_object(raw):
            raise FaultRuleError("each rule must be a JSON object")
        unknown = set(raw) - {"path", "method", "latency_ms", "error_rate", "status", "message"}
        if unknown:
            raise FaultRuleError(f"unknown rule fields: {', '.join(sorted(unknown))}")
        path = raw.get("path", ".*")
        if not isinstance(path, str):
            raise FaultRuleError("path must be a regular expression string")
        try:
            compiled = re.compile(path)
        except re.error as exc:
            raise FaultRuleError(f"path is not a valid regular expression: {exc}") from None
        method = raw.get("method")
        if method is not None and (
            not isinstance(method, str) or method.upper() not in ("GET", "POST", "PUT", "DELETE")
        ):
            raise FaultRuleError("method must be GET, POST, PUT, DELETE or null")
        latency = _number(raw, "latency_ms", 0.0, 0.0, 600_000.0)
        rate = _number(raw, "error_rate", 0.0, 0.0, 1.0)
        status = raw.get("status", 500)
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise FaultRuleError("status must be an integer from 400 to 599")
        message = raw.get("message", DEFAULT_MESSAGE)
        if not isinstance(message, str) or not message.strip():
            raise FaultRuleError("message must be a non-empty string")
        return cls(compiled, method.upper() if method else None, latency, rate, status, message)


def _number(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultRuleError(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def parse_cli_rule(text: str, field_name: str) -> FaultRule:
    """`REGEX=VALUE` from --latency (milliseconds) or --error-rate (0..1)."""
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise FaultRuleError(f"expected REGEX=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise FaultRuleError(f"{value!r} is not a number") from None
    return FaultRule.from_dict({"path": pattern, field_name: number})


class Faults:
    def __init__(self, initial: list[FaultRule] | None = None) -> None:
        self.rules: list[FaultRule] = list(initial or [])
        self._random = random.Random()

    def replace(self, rules: list[FaultRule]) -> None:
        self.rules = list(rules)

    def clear(self) -> None:
        self.rules = []

    def plan(self, method: str, path: str) -> tuple[float, ApiError | None]:
        """Total latency (seconds) and the error to answer with, if any, for one call."""
        delay = 0.0
        error: ApiError | None = None
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            delay += rule.latency_ms / 1000
            if error is None and rule.error_rate > 0 and self._random.random() < rule.error_rate:
                error = ApiError(rule.status, rule.message)
        return delay, error
