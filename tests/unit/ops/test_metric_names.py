"""Every metric follows the naming conventions, and outside label values cannot grow the series count."""

from __future__ import annotations

import asyncio
import datetime
import platform
import re
import socket
from typing import Any

import httpx2
import pytest
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families
from proxmox_mcp_runtime import metrics as m
from proxmox_mcp_runtime.metrics_http import (
    HttpMetricsMiddleware,
    MetricsConfigError,
    metrics_settings,
    render_latest,
    serve_metrics_from_env,
    start_metrics_server,
)

NAME = re.compile(r"^proxmox_mcp_[a-z][a-z0-9_]*[a-z0-9]$")
FORBIDDEN_LABELS = {"host", "hostname", "address", "vmid", "command", "node", "token", "token_id", "user", "path"}
UNIT_WORDS = ("duration", "latency", "timestamp", "expiry", "processing")


def _wrapped() -> list[Counter | Gauge | Histogram]:
    return [c for c in m.OWN_COLLECTORS if isinstance(c, Counter | Gauge | Histogram)]


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return m.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_every_family_has_the_prefix_and_a_help_text() -> None:
    families = m.metric_families()
    assert len(families) >= 30
    for family in families:
        assert NAME.match(family.name), family.name
        assert family.documentation.strip(), f"{family.name} has no HELP text"


def test_counters_are_exposed_with_total_and_nothing_else_is() -> None:
    for family in m.metric_families():
        if family.type == "counter":
            assert not family.name.endswith("_total"), "prometheus-client appends _total itself"
        else:
            assert not family.name.endswith("_total"), f"{family.name} is a {family.type} named like a counter"
    exported = m.metric_names()
    counters = {f.name for f in m.metric_families() if f.type == "counter"}
    assert {f"{name}_total" for name in counters} <= set(exported)


def test_time_metrics_use_seconds_as_their_base_unit() -> None:
    for name in (f.name for f in m.metric_families()):
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kilobytes|megabytes)(_|$)", name), name
        if any(word in name for word in UNIT_WORDS):
            assert name.endswith("_seconds"), f"{name} measures time but does not end in _seconds"


def test_labels_come_from_the_low_cardinality_vocabulary() -> None:
    for metric in _wrapped():
        labels = set(metric._labelnames)
        assert labels <= m.ALLOWED_LABELS, (metric._name, labels - m.ALLOWED_LABELS)
        assert not labels & FORBIDDEN_LABELS, metric._name


def test_latency_buckets_hold_the_alert_thresholds() -> None:
    for bound in (1.0, 3.0, 5.0):
        assert bound in m.LATENCY_BUCKETS


def test_thousands_of_hostile_tool_names_stay_a_bounded_set_of_series() -> None:
    for i in range(2000):
        m.observe_tool_call(f"tool_{i}", "ok", 0.01)
    m.observe_tool_call("rm -rf / ; echo", "ok", 0.01)
    m.observe_tool_call("list_vms", "made-up-code", 0.01)
    samples = [s for f in m.REGISTRY.collect() if f.name == "proxmox_mcp_tool_calls" for s in f.samples]
    tools = {s.labels["tool"] for s in samples}
    assert len(tools) <= 65
    assert "other" in tools
    assert not any(" " in t for t in tools)
    assert {s.labels["code"] for s in samples} <= m.CODES | {"other"}


def test_declared_tools_close_the_tool_label() -> None:
    m.declare_tools([*m.ORIGINAL_TOOLS, "snapshot_list"])
    try:
        m.observe_tool_call("snapshot_list", "ok", 0.01)
        m.observe_tool_call("not_a_tool_we_have", "ok", 0.01)
        assert _value("proxmox_mcp_tool_calls_total", {"tool": "snapshot_list", "code": "ok"}) >= 1
        assert _value("proxmox_mcp_tool_calls_total", {"tool": "not_a_tool_we_have", "code": "ok"}) == 0
    finally:
        m._tool._closed = False


def test_policy_denied_results_also_count_as_policy_denials() -> None:
    before = _value("proxmox_mcp_policy_denied_total", {"tool": "execute_command"})
    m.observe_tool_call("execute_command", "policy_denied", 0.001)
    assert _value("proxmox_mcp_policy_denied_total", {"tool": "execute_command"}) == before + 1


@pytest.mark.parametrize(("status", "expected"), [(200, "2xx"), (204, "2xx"), (301, "3xx"), (403, "4xx"),
                                                  (501, "5xx"), (None, "error"), (0, "error"), (999, "error")])
def test_status_class_groups_http_statuses(status: int | None, expected: str) -> None:
    assert m.status_class(status) == expected


def test_api_calls_are_labelled_by_method_and_status_class_only() -> None:
    m.observe_api_call("default", "get", 200, 0.05)
    m.observe_api_call("default", "PATCH", None, 0.05)
    assert _value("proxmox_mcp_api_requests_total",
                  {"cluster": "default", "method": "GET", "status_class": "2xx"}) >= 1
    assert _value("proxmox_mcp_api_requests_total",
                  {"cluster": "default", "method": "other", "status_class": "error"}) >= 1


def test_health_listener_sets_probe_gauges_and_worker_instances() -> None:
    class State:
        def __init__(self, status: str, latency_ms: float | None, detail: dict[str, Any]) -> None:
            self.status = status
            self.latency_ms = latency_ms
            self.last_success = 1_700_000_000.0 if status == "ok" else None
            self.detail = detail

    listen = m.health_listener("default")
    listen("ssh", State("ok", 12.0, {}), "default")
    listen("ssh-worker", State("ok", 1.0, {"instances": 3}), "default")
    listen("api-worker", State("fail", None, {}), "default")
    listen("api", State("fail", None, {}), "beta")
    assert _value("proxmox_mcp_probe_up", {"check": "ssh", "cluster": "default"}) == 1
    assert _value("proxmox_mcp_probe_latency_seconds", {"check": "ssh", "cluster": "default"}) == pytest.approx(0.012)
    assert _value("proxmox_mcp_probe_last_success_timestamp_seconds",
                  {"check": "ssh", "cluster": "default"}) == 1_700_000_000.0
    assert _value("proxmox_mcp_worker_instances", {"kind": "ssh"}) == 3
    assert _value("proxmox_mcp_worker_instances", {"kind": "api"}) == 0
    assert _value("proxmox_mcp_probe_up", {"check": "api", "cluster": "beta"}) == 0
    listen("ssh", State("fail", None, {}), "default")
    assert _value("proxmox_mcp_probe_up", {"check": "ssh", "cluster": "default"}) == 0


def test_worker_observer_counts_by_kind_op_and_outcome() -> None:
    observe = m.worker_observer("ssh")
    observe("exec", "ok", 0.2)
    observe("exec", "timeout", 2.0)
    assert _value("proxmox_mcp_worker_requests_total", {"kind": "ssh", "op": "exec", "outcome": "timeout"}) >= 1
    assert _value("proxmox_mcp_worker_request_duration_seconds_count", {"kind": "ssh", "op": "exec"}) >= 2


def test_srv_stats_are_summed_over_instances() -> None:
    endpoint = {"name": "default-exec", "num_requests": 5, "num_errors": 1, "processing_time": 2_000_000_000}
    m.SRV_STATS.update("ssh", [{"endpoints": [endpoint]}, {"endpoints": [{**endpoint, "num_requests": 3}]}])
    assert _value("proxmox_mcp_worker_srv_requests_total", {"kind": "ssh", "op": "exec"}) == 8
    assert _value("proxmox_mcp_worker_srv_errors_total", {"kind": "ssh", "op": "exec"}) == 2
    assert _value("proxmox_mcp_worker_srv_average_processing_seconds", {"kind": "ssh", "op": "exec"}) == 0.5


def test_watch_nats_reads_the_client_on_every_scrape() -> None:
    class Client:
        is_connected = False
        stats = {"reconnects": 0}

    client = Client()
    m.watch_nats(lambda: client)
    assert _value("proxmox_mcp_nats_connected") == 0
    client.is_connected = True
    client.stats = {"reconnects": 4}
    assert _value("proxmox_mcp_nats_connected") == 1
    assert _value("proxmox_mcp_nats_reconnects_total") == 4


def test_watch_audit_exports_the_audit_logs_own_counters() -> None:
    class Log:
        failures = 0
        written = 7
        healthy = True

    log = Log()
    m.watch_audit(lambda: log)
    assert _value("proxmox_mcp_audit_records_total") == 7
    assert _value("proxmox_mcp_audit_healthy") == 1
    log.failures, log.healthy = 2, False
    assert _value("proxmox_mcp_audit_write_failures_total") == 2
    assert _value("proxmox_mcp_audit_healthy") == 0


def test_certificate_not_after_reads_a_real_certificate() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pve.test")])
    not_after = datetime.datetime(2031, 1, 2, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    seconds = m.certificate_not_after(cert.public_bytes(serialization.Encoding.DER))
    assert seconds == not_after.timestamp()
    m.set_api_certificate_not_after("default", seconds)
    assert _value("proxmox_mcp_api_certificate_expiry_timestamp_seconds", {"cluster": "default"}) == seconds


def test_exposition_parses_and_only_holds_conventional_names() -> None:
    body, content_type = render_latest()
    assert content_type.startswith("text/plain")
    ours = [f for f in text_string_to_metric_families(body.decode()) if f.name.startswith("proxmox_mcp")]
    assert ours
    for family in ours:
        assert NAME.match(family.name), family.name


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
    server = start_metrics_server(0)
    try:
        body = httpx2.get(server.url, timeout=5).text
        assert "proxmox_mcp_tool_calls_total" in body
        assert "process_resident_memory_bytes" in body
        with pytest.raises(MetricsConfigError, match=f"127.0.0.1:{server.port}"):
            start_metrics_server(server.port)
    finally:
        server.close()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))  # nothing listens there after close()


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
