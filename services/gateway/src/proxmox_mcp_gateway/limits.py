"""Rate limits (token buckets per token and per token+tool) and a concurrency cap per token.

A refused call raises ServiceFailure(rate_limited) with details.retry_after (seconds, float): REST turns it
into HTTP 429 + Retry-After, MCP into a tool error the model can read (see mcp_server.py for why).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

Clock = Callable[[], float]
_SPEC = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<len>\d+(?:\.\d+)?)?\s*(?P<unit>ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class RateSpec:
    """`N/PERIOD`: up to N calls at once, refilled evenly over PERIOD (e.g. `120/m`, `5/2s`, `2/500ms`)."""

    capacity: float
    period: float

    @property
    def per_second(self) -> float:
        return self.capacity / self.period

    @classmethod
    def parse(cls, text: str) -> RateSpec | None:
        """None for `off`/`0`; ValueError with the accepted forms otherwise."""
        text = text.strip().lower()
        if text in ("off", "0", "none", ""):
            return None
        match = _SPEC.match(text)
        if not match or float(match.group("n")) <= 0 or float(match.group("len") or 1) <= 0:
            raise ValueError(f"rate limit {text!r}: expected N/PERIOD like 120/m, 5/2s, 2/500ms, or off")
        period = float(match.group("len") or 1) * _UNIT_SECONDS[match.group("unit")]
        return cls(capacity=float(match.group("n")), period=period)


def parse_tool_rates(text: str) -> dict[str, RateSpec | None]:
    """`execute_command=30/m,vm_action=off` -> per-tool specs."""
    rates: dict[str, RateSpec | None] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, spec = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"tool rate {item!r}: expected TOOL=N/PERIOD")
        rates[name.strip()] = RateSpec.parse(spec)
    return rates


@dataclass
class TokenBucket:
    spec: RateSpec
    clock: Clock = time.monotonic
    level: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.level = self.spec.capacity
        self.stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.spec.capacity, self.level + (now - self.stamp) * self.spec.per_second)
        self.stamp = now

    def wait_time(self) -> float:
        """0 when a call may go now, else seconds until one token is there."""
        self._refill()
        return 0.0 if self.level >= 1 else (1 - self.level) / self.spec.per_second

    def take(self) -> None:
        self.level -= 1


def rate_limited(message: str, retry_after: float, limit: str) -> ServiceFailure:
    """limit names the limit that was hit: token, tool or concurrency (a metrics label)."""
    wait = max(retry_after, 0.001)
    return ServiceFailure(ErrorCode.RATE_LIMITED, f"{message}; retry after {math.ceil(wait)} s",
                          retryable=True, details={"retry_after": round(wait, 3), "limit": limit})


class Limiter(Protocol):
    """The call path's view of the limits: in memory (CallLimiter) or shared by the replicas (SharedCallLimiter)."""

    async def admit(self, token_id: str, tool: str) -> None:
        """Count the call against its rate limits, or raise ServiceFailure (rate_limited, unavailable)."""
        ...

    def slot(self, token_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of the token's concurrent-call slots for the block, or raise ServiceFailure."""
        ...

    def refusal(self, token_id: str, tool: str) -> ServiceFailure | None:
        """What admit would raise now as far as this gateway can tell without a round trip, consuming nothing
        (the check from the routing headers, before a body is read); None when it cannot tell."""
        ...


class CallLimiter:
    """All call limits of one gateway, in memory. check_rate() takes from the buckets only when every one of them
    allows."""

    def __init__(self, per_token: RateSpec | None, per_tool: Mapping[str, RateSpec | None] | None = None,
                 max_concurrent: int = 0, clock: Clock = time.monotonic) -> None:
        self.per_token = per_token
        self.per_tool = dict(per_tool or {})
        self.max_concurrent = max_concurrent
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._running: dict[str, int] = {}

    def _bucket(self, key: tuple[str, str], spec: RateSpec) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.spec != spec:
            bucket = self._buckets[key] = TokenBucket(spec, self.clock)
        return bucket

    def refusal(self, token_id: str, tool: str) -> ServiceFailure | None:
        """What check_rate would raise now, without taking from any bucket (the check before a body is read)."""
        for bucket, what, limit in self._checks(token_id, tool):
            wait = bucket.wait_time()
            if wait > 0:
                return rate_limited(f"{what} is reached", wait, limit)
        return None

    def check_rate(self, token_id: str, tool: str) -> None:
        checks = self._checks(token_id, tool)
        for bucket, what, limit in checks:
            wait = bucket.wait_time()
            if wait > 0:
                raise rate_limited(f"{what} is reached", wait, limit)
        for bucket, _, _ in checks:
            bucket.take()

    def _checks(self, token_id: str, tool: str) -> list[tuple[TokenBucket, str, str]]:
        checks: list[tuple[TokenBucket, str, str]] = []
        if self.per_token is not None:
            checks.append((self._bucket((token_id, ""), self.per_token), "this token's call rate limit", "token"))
        tool_spec = self.per_tool.get(tool)
        if tool_spec is not None:
            checks.append((self._bucket((token_id, tool), tool_spec), f"this token's rate limit for {tool}", "tool"))
        return checks

    async def admit(self, token_id: str, tool: str) -> None:
        self.check_rate(token_id, tool)

    @contextlib.asynccontextmanager
    async def slot(self, token_id: str) -> AsyncGenerator[None]:
        with self.running(token_id):
            yield

    @contextlib.contextmanager
    def running(self, token_id: str) -> Generator[None, None, None]:
        """Holds one of the token's concurrent call slots; refused past max_concurrent."""
        count = self._running.get(token_id, 0)
        if self.max_concurrent and count >= self.max_concurrent:
            raise rate_limited(f"this token already has {count} calls running (the limit)", 1.0, "concurrency")
        self._running[token_id] = count + 1
        try:
            yield
        finally:
            left = self._running[token_id] - 1
            if left:
                self._running[token_id] = left
            else:
                del self._running[token_id]
