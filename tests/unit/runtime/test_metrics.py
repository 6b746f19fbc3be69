"""The runtime's metrics: bounded labels, what workers and every process export, and the /metrics server."""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass, field

import httpx2
import pytest
from proxmox_mcp_runtime.metrics.labels import OTHER, BoundedLabel, ClosedLabel, status_class
from proxmox_mcp_runtime.metrics.process import watch_nats
from proxmox_mcp_runtime.metrics.registry import REGISTRY
from proxmox_mcp_runtime.metrics.serve import (
    MetricsConfigError,
    metrics_settings,
    serve_metrics_from_env,
    start_metrics_server,
)
from proxmox_mcp_runtime.metrics.ssh import declare_ssh_cluster, observe_ssh_command, observe_ssh_connect
from proxmox_mcp_runtime.metrics.worker import watch_worker, worker_observer


def _value(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


def test_thousands_of_hostile_values_stay_a_bounded_set() -> None:
    label = BoundedLabel(r"[a-z][a-z0-9_]{0,47}", 64)
    seen = {label(f"op_{i}") for i in range(2000)}
    assert len(seen) == 65 and OTHER in seen
    assert label("rm -rf / ; echo") == OTHER
    assert label("op_1") == "op_1"


def test_a_closed_label_knows_only_its_vocabulary() -> None:
    label = ClosedLabel(("ssh", "api"))
    assert [label("ssh"), label("api"), label("SSH"), label("x" * 1000)] == ["ssh", "api", OTHER, OTHER]


@pytest.mark.parametrize(("status", "expected"), [(200, "2xx"), (204, "2xx"), (301, "3xx"), (403, "4xx"),
                                                  (501, "5xx"), (None, "error"), (0, "error"), (999, "error")])
def test_status_class_groups_http_statuses(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_worker_observer_counts_by_kind_op_and_outcome() -> None:
    labels = {"kind": "ssh", "op": "exec", "outcome": "timeout"}
    before = _value("proxmox_mcp_worker_requests_total", labels) or 0
    count_before = _value("proxmox_mcp_worker_request_duration_seconds_count", {"kind": "ssh", "op": "exec"}) or 0
    observe = worker_observer("ssh")
    observe("exec", "ok", 0.2)
    observe("exec", "timeout", 2.0)
    observe("exec", "made-up-code", 0.1)
    assert _value("proxmox_mcp_worker_requests_total", labels) == before + 1
    assert _value("proxmox_mcp_worker_requests_total", {"kind": "ssh", "op": "exec", "outcome": OTHER})
    assert _value("proxmox_mcp_worker_request_duration_seconds_count",
                  {"kind": "ssh", "op": "exec"}) == count_before + 3


@dataclass
class _Client:
    is_connected: bool = False
    stats: dict[str, int] = field(default_factory=lambda: {"reconnects": 0})


@dataclass
class _Runtime:
    inflight: int = 0
    nats_client: _Client | None = None


def test_a_watched_worker_exports_its_requests_in_flight_and_its_nats_connection_on_every_scrape() -> None:
    runtime = _Runtime()
    watch_worker("api", runtime)
    assert _value("proxmox_mcp_worker_requests_in_flight", {"kind": "api"}) == 0
    assert _value("proxmox_mcp_nats_connected") == 0  # not connected yet: that is 0, not missing
    runtime.inflight = 3
    runtime.nats_client = _Client(is_connected=True, stats={"reconnects": 4})
    assert _value("proxmox_mcp_worker_requests_in_flight", {"kind": "api"}) == 3
    assert _value("proxmox_mcp_nats_connected") == 1
    assert _value("proxmox_mcp_nats_reconnects_total") == 4


def test_watching_another_client_replaces_the_first() -> None:
    first, second = _Client(is_connected=True), _Client(is_connected=False)
    watch_nats(lambda: first)
    assert _value("proxmox_mcp_nats_connected") == 1
    watch_nats(lambda: second)
    assert _value("proxmox_mcp_nats_connected") == 0


def test_a_declared_ssh_cluster_exports_its_rare_counters_at_zero_from_the_start() -> None:
    declare_ssh_cluster("fresh")
    assert _value("proxmox_mcp_ssh_reconnects_total", {"cluster": "fresh"}) == 0
    assert _value("proxmox_mcp_ssh_output_truncated_total", {"cluster": "fresh"}) == 0
    assert _value("proxmox_mcp_ssh_pool_connections", {"cluster": "fresh"}) == 0
    observe_ssh_connect("fresh", "ok", 0.05, reconnect=True)
    observe_ssh_command("fresh", "nonzero", truncated=True)
    observe_ssh_connect("fresh", "auth_failed", 0.05, reconnect=True)  # a failed attempt replaced nothing
    assert _value("proxmox_mcp_ssh_reconnects_total", {"cluster": "fresh"}) == 1
    assert _value("proxmox_mcp_ssh_output_truncated_total", {"cluster": "fresh"}) == 1
    assert _value("proxmox_mcp_ssh_commands_total", {"cluster": "fresh", "result": "nonzero"}) == 1
    assert _value("proxmox_mcp_ssh_connect_duration_seconds_count", {"cluster": "fresh"}) == 1


@pytest.mark.parametrize("raw", ["abc", "-1", "70000", "80.5"])
def test_a_bad_metrics_port_is_refused_with_the_variable_named(raw: str) -> None:
    with pytest.raises(MetricsConfigError, match="PMCP_METRICS_PORT"):
        metrics_settings({"PMCP_METRICS_PORT": raw})


def test_metrics_are_off_unless_a_port_is_set() -> None:
    assert metrics_settings({}) is None
    assert metrics_settings({"PMCP_METRICS_PORT": "  "}) is None
    assert metrics_settings({"PMCP_METRICS_PORT": "9464"}) == ("127.0.0.1", 9464)
    assert metrics_settings({"PMCP_METRICS_PORT": "0", "PMCP_METRICS_HOST": "0.0.0.0"}) == ("0.0.0.0", 0)
    assert serve_metrics_from_env("ssh-worker", "1.2.3", {}) is None
    assert _value("proxmox_mcp_build_info", {"service": "ssh-worker", "version": "1.2.3",
                                             "python_version": platform.python_version()}) == 1


def test_the_metrics_server_serves_our_registry_and_reports_a_busy_port() -> None:
    worker_observer("ssh")("exec", "ok", 0.01)
    server = start_metrics_server(0)
    try:
        body = httpx2.get(server.url, timeout=5).text
        assert "proxmox_mcp_worker_requests_total" in body
        assert "process_resident_memory_bytes" in body
        with pytest.raises(MetricsConfigError, match=f"127.0.0.1:{server.port}"):
            start_metrics_server(server.port)
    finally:
        server.close()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))  # nothing listens there after close()
