"""Tool calls as the gateway answers them: results, latency, calls in flight, refusals, task waits."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_runtime.metrics.labels import CODES, BoundedLabel, ClosedLabel, cluster_label
from proxmox_mcp_runtime.metrics.registry import LATENCY_BUCKETS, TASK_BUCKETS, counter, gauge, histogram

from proxmox_mcp_gateway.catalog import TOOLS

CANCELLED = "cancelled"
"""The result of a call the client cancelled (in the audit record and the metrics): nothing failed, the client
left."""

TOOL_CALLS = counter("proxmox_mcp_tool_calls",
                     "Tool calls answered by the gateway, by tool and result code ('ok' or an error code).",
                     ["tool", "code"])
TOOL_CALL_DURATION = histogram("proxmox_mcp_tool_call_duration_seconds",
                               "End-to-end tool call latency in the gateway (all results).", ["tool"], LATENCY_BUCKETS)
TOOL_CALLS_IN_FLIGHT = gauge("proxmox_mcp_tool_calls_in_flight", "Tool calls the gateway is working on right now.",
                             ["tool"])
RATE_LIMITED = counter("proxmox_mcp_rate_limited",
                       "Requests refused with 429, by tool and by which limit hit (token, tool, concurrency).",
                       ["tool", "limit"])
POLICY_DENIED = counter("proxmox_mcp_policy_denied",
                        "Calls refused by the command or API-path policy (policy_denied), by tool.", ["tool"])
TASK_WAIT_DURATION = histogram("proxmox_mcp_task_wait_duration_seconds",
                               "Time spent following a Proxmox task (UPID) to its end.", ["cluster", "outcome"],
                               TASK_BUCKETS)

tool_label = ClosedLabel(spec.name for spec in TOOLS)
"""Only the catalog's tool names: a caller naming a tool we do not have is counted as "other"."""
_code = ClosedLabel({*CODES, CANCELLED})
_limit = BoundedLabel(r"[a-z][a-z0-9_]{0,31}", 8)
_task_outcome = ClosedLabel(("ok", "failed", "timeout", "error"))


def observe_tool_call(tool: str, code: str, seconds: float) -> None:
    """Once per tool call, when the gateway answers it (code 'ok', an ErrorCode value or 'cancelled')."""
    name = tool_label(tool)
    result = _code(code)
    TOOL_CALLS.labels(name, result).inc()
    TOOL_CALL_DURATION.labels(name).observe(max(seconds, 0.0))
    if result == ErrorCode.POLICY_DENIED.value:
        POLICY_DENIED.labels(name).inc()


def observe_call(tool: str, code: str, seconds: float, details: dict[str, Any]) -> None:
    """The executor's CallObserver: CallSecurity(observer=observe_call)."""
    observe_tool_call(tool, code, seconds)
    if code == ErrorCode.RATE_LIMITED.value:
        RATE_LIMITED.labels(tool_label(tool), _limit(details.get("limit") or "token")).inc()


@contextmanager
def tool_in_flight(tool: str) -> Generator[None, None, None]:
    """`with tool_in_flight(name):` around the dispatch of one call."""
    in_flight = TOOL_CALLS_IN_FLIGHT.labels(tool_label(tool))
    in_flight.inc()
    try:
        yield
    finally:
        in_flight.dec()


def observe_task_wait(cluster: str, outcome: str, seconds: float) -> None:
    """outcome: ok (task ended OK), failed (ended with an error), timeout (still running), error."""
    TASK_WAIT_DURATION.labels(cluster_label(cluster), _task_outcome(outcome)).observe(max(seconds, 0.0))
