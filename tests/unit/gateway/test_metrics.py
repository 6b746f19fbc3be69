"""The gateway's metrics: tool calls bounded to the catalog, refusals, probes, the audit log, HTTP handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_gateway.catalog import TOOLS
from proxmox_mcp_gateway.metrics import CANCELLED, health_listener, observe_call, tool_in_flight
from proxmox_mcp_gateway.metrics.audit import watch_audit
from proxmox_mcp_gateway.metrics.calls import observe_tool_call
from proxmox_mcp_gateway.metrics.http import HttpMetricsMiddleware
from proxmox_mcp_runtime.metrics.registry import REGISTRY


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _tool_labels() -> set[str]:
    return {s.labels["tool"] for f in REGISTRY.collect() if f.name == "proxmox_mcp_tool_calls" for s in f.samples}


def test_tool_names_outside_the_catalog_are_counted_as_other() -> None:
    for i in range(500):
        observe_tool_call(f"tool_{i}", "ok", 0.01)
    observe_tool_call("rm -rf / ; echo", "ok", 0.01)
    observe_tool_call("list_vms", "ok", 0.01)
    assert _tool_labels() <= {spec.name for spec in TOOLS} | {"other"}
    assert {"other", "list_vms"} <= _tool_labels()


def test_result_codes_are_ok_an_error_code_or_cancelled() -> None:
    observe_tool_call("vm_action", CANCELLED, 0.5)
    observe_tool_call("vm_action", "made-up-code", 0.01)
    assert _value("proxmox_mcp_tool_calls_total", {"tool": "vm_action", "code": "cancelled"}) >= 1
    assert _value("proxmox_mcp_tool_calls_total", {"tool": "vm_action", "code": "other"}) >= 1


def test_policy_denied_results_also_count_as_policy_denials() -> None:
    before = _value("proxmox_mcp_policy_denied_total", {"tool": "execute_command"})
    observe_call("execute_command", "policy_denied", 0.001, {})
    assert _value("proxmox_mcp_policy_denied_total", {"tool": "execute_command"}) == before + 1


def test_rate_limited_calls_are_counted_by_the_limit_that_was_hit() -> None:
    token = {"tool": "list_vms", "limit": "token"}
    concurrency = {"tool": "list_vms", "limit": "concurrency"}
    before = _value("proxmox_mcp_rate_limited_total", token), _value("proxmox_mcp_rate_limited_total", concurrency)
    observe_call("list_vms", "rate_limited", 0.001, {})
    observe_call("list_vms", "rate_limited", 0.001, {"limit": "concurrency"})
    assert _value("proxmox_mcp_rate_limited_total", token) == before[0] + 1
    assert _value("proxmox_mcp_rate_limited_total", concurrency) == before[1] + 1


def test_a_call_in_flight_is_counted_until_it_ends_even_when_it_fails() -> None:
    labels = {"tool": "node_status"}
    try:
        with tool_in_flight("node_status"):
            assert _value("proxmox_mcp_tool_calls_in_flight", labels) == 1
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert _value("proxmox_mcp_tool_calls_in_flight", labels) == 0


@dataclass
class _State:
    status: str
    latency_ms: float | None
    detail: dict[str, Any] = field(default_factory=dict[str, Any])
    last_success: float | None = None


def test_health_listener_sets_probe_gauges_and_worker_instances() -> None:
    listen = health_listener("default")
    listen("ssh", _State("ok", 12.0, last_success=1_700_000_000.0), "default")
    listen("ssh-worker", _State("ok", 1.0, {"instances": 3}), "default")
    listen("api-worker", _State("fail", None), "default")
    listen("api", _State("fail", None), "beta")
    assert _value("proxmox_mcp_probe_up", {"check": "ssh", "cluster": "default"}) == 1
    assert _value("proxmox_mcp_probe_latency_seconds", {"check": "ssh", "cluster": "default"}) == 0.012
    assert _value("proxmox_mcp_probe_last_success_timestamp_seconds",
                  {"check": "ssh", "cluster": "default"}) == 1_700_000_000.0
    assert _value("proxmox_mcp_worker_instances", {"kind": "ssh"}) == 3
    assert _value("proxmox_mcp_worker_instances", {"kind": "api"}) == 0
    assert _value("proxmox_mcp_probe_up", {"check": "api", "cluster": "beta"}) == 0
    listen("ssh", _State("fail", None), "default")
    assert _value("proxmox_mcp_probe_up", {"check": "ssh", "cluster": "default"}) == 0


def test_watch_audit_exports_the_audit_logs_own_counters() -> None:
    @dataclass
    class Log:
        failures: int = 0
        written: int = 7
        healthy: bool = True

    log = Log()
    watch_audit(lambda: log)
    assert _value("proxmox_mcp_audit_records_total") == 7
    assert _value("proxmox_mcp_audit_healthy") == 1
    log.failures, log.healthy = 2, False
    assert _value("proxmox_mcp_audit_write_failures_total") == 2
    assert _value("proxmox_mcp_audit_healthy") == 0


def test_http_middleware_counts_known_handlers_and_folds_the_rest() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        status = 200 if scope["path"] == "/health" else 404
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = HttpMetricsMiddleware(app)

    async def call(path: str) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(_message: Any) -> None:
            return None

        await middleware({"type": "http", "path": path, "method": "GET"}, receive, send)

    health = {"handler": "/health", "method": "GET", "status_class": "2xx"}
    other = {"handler": "other", "method": "GET", "status_class": "4xx"}
    before = (_value("proxmox_mcp_http_requests_total", health), _value("proxmox_mcp_http_requests_total", other))
    asyncio.run(call("/health"))
    asyncio.run(call("/no/such/path/12345"))
    asyncio.run(call("/another-unknown"))
    assert _value("proxmox_mcp_http_requests_total", health) == before[0] + 1
    assert _value("proxmox_mcp_http_requests_total", other) == before[1] + 2
