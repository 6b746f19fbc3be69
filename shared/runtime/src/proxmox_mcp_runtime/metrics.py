"""Every Prometheus metric proxmox-mcp exports, and the small functions the services call to move them.

Conventions (checked by tests/unit/ops/test_metric_names.py): one `proxmox_mcp_` prefix, base units
(seconds, bytes), counters end in `_total`, and labels only from a small closed vocabulary. Label values
that come from outside (tool names, cluster names, codes) pass through `_Bounded`, so a hostile or buggy
caller can never blow up the number of series: unknown shapes become "other".
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from proxmox_mcp_contracts.errors import ErrorCode

# `_created` series double the count of every counter for a timestamp nobody alerts on.
disable_created_metrics()

PREFIX = "proxmox_mcp_"
REGISTRY = CollectorRegistry(auto_describe=True)
for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_default)

ALLOWED_LABELS = frozenset(
    {"tool", "code", "outcome", "op", "kind", "method", "status_class", "cluster", "check", "handler", "limit",
     "reason", "result", "service", "version", "python_version"}
)
OK = "ok"
OTHER = "other"

# Seconds. 1, 3 and 5 are bucket bounds so the p95 alerts (health 1 s, API 3 s, command 5 s) are exact.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class _Bounded:
    """Maps outside label values onto a bounded set: values matching a pattern, at most `limit` distinct.
    After `close(values)` only those values pass (e.g. the gateway's tool catalog)."""

    def __init__(self, pattern: str, limit: int, seed: Iterable[str] = ()) -> None:
        self._pattern = re.compile(pattern)
        self._limit = limit
        self._seen: set[str] = set(seed)
        self._closed = False
        self._lock = threading.Lock()

    def close(self, values: Iterable[str]) -> None:
        with self._lock:
            self._seen = {str(v) for v in values if self._pattern.fullmatch(str(v))}
            self._closed = True

    def __call__(self, value: object) -> str:
        text = str(value)
        if text in self._seen:
            return text
        if self._closed or not self._pattern.fullmatch(text):
            return OTHER
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
        return text


class _Closed:
    """Maps outside label values onto a fixed vocabulary; anything else becomes "other"."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(values)

    def __call__(self, value: object) -> str:
        text = str(value)
        return text if text in self.values else OTHER


CANCELLED = "cancelled"
"""A call the client cancelled (e.g. mid task-wait): neither ok nor an error of ours."""
CODES = frozenset({OK, CANCELLED, *(code.value for code in ErrorCode)})
ORIGINAL_TOOLS = ("execute_command", "list_vms", "vm_status", "vm_action", "node_status", "proxmox_api")
_tool = _Bounded(r"[a-z][a-z0-9_]{0,47}", 64, seed=ORIGINAL_TOOLS)
_cluster = _Bounded(r"[a-z0-9][a-z0-9_-]{0,62}", 32)
_op = _Bounded(r"[a-z][a-z0-9_]{0,47}", 64)
_code = _Closed(CODES)
_kind = _Closed(("ssh", "api"))
_check = _Bounded(r"[a-z][a-z0-9_-]{0,31}", 16)
_method = _Closed(("GET", "POST", "PUT", "DELETE"))
_reason = _Bounded(r"[a-z][a-z0-9_]{0,31}", 16)
_limit = _Bounded(r"[a-z][a-z0-9_]{0,31}", 8)
_ssh_outcome = _Bounded(r"[a-z][a-z0-9_]{0,31}", 12)
_task_outcome = _Closed(("ok", "failed", "timeout", "error"))
_command_result = _Closed(("ok", "nonzero", "timeout", "denied", "error"))

# --- gateway: tool calls -------------------------------------------------------------------------

TOOL_CALLS = Counter(
    "proxmox_mcp_tool_calls", "Tool calls answered by the gateway, by tool and result code ('ok' or an error code).",
    ["tool", "code"], registry=REGISTRY,
)
TOOL_CALL_DURATION = Histogram(
    "proxmox_mcp_tool_call_duration_seconds", "End-to-end tool call latency in the gateway (all results).",
    ["tool"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
TOOL_CALLS_IN_FLIGHT = Gauge(
    "proxmox_mcp_tool_calls_in_flight", "Tool calls the gateway is working on right now.", ["tool"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "proxmox_mcp_rate_limited", "Requests refused with 429, by tool and by which limit hit (token, tool, concurrency).",
    ["tool", "limit"], registry=REGISTRY,
)
POLICY_DENIED = Counter(
    "proxmox_mcp_policy_denied", "Calls refused by the command or API-path policy (policy_denied), by tool.",
    ["tool"], registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "proxmox_mcp_auth_failures", "Requests refused before any tool ran (401/403), by reason.", ["reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "proxmox_mcp_http_requests", "HTTP requests the gateway answered, by handler, method and status class.",
    ["handler", "method", "status_class"], registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "proxmox_mcp_http_request_duration_seconds", "HTTP request latency in the gateway, by handler.",
    ["handler"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
TASK_WAIT_DURATION = Histogram(
    "proxmox_mcp_task_wait_duration_seconds", "Time spent following a Proxmox task (UPID) to its end.",
    ["cluster", "outcome"], buckets=TASK_BUCKETS, registry=REGISTRY,
)

# --- gateway: NATS and the workers as the gateway sees them ---------------------------------------

NATS_REQUESTS = Counter(
    "proxmox_mcp_nats_requests", "Gateway-to-worker NATS requests, by worker kind and outcome code.",
    ["kind", "outcome"], registry=REGISTRY,
)
NATS_REQUEST_DURATION = Histogram(
    "proxmox_mcp_nats_request_duration_seconds", "Gateway-to-worker NATS request latency (incl. the worker's work).",
    ["kind"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
PROBE_UP = Gauge(
    "proxmox_mcp_probe_up", "1 when the last health probe of a component succeeded, else 0 "
    "(check: nats, ssh-worker, api-worker, ssh, api).", ["check", "cluster"], registry=REGISTRY,
)
PROBE_LATENCY = Gauge(
    "proxmox_mcp_probe_latency_seconds", "Latency of the last health probe.", ["check", "cluster"], registry=REGISTRY,
)
PROBE_LAST_SUCCESS = Gauge(
    "proxmox_mcp_probe_last_success_timestamp_seconds", "Unix time of the last successful probe.",
    ["check", "cluster"], registry=REGISTRY,
)
WORKER_INSTANCES = Gauge(
    "proxmox_mcp_worker_instances", "Worker instances that answered the last $SRV.PING, by kind.", ["kind"],
    registry=REGISTRY,
)

# --- workers --------------------------------------------------------------------------------------

WORKER_REQUESTS = Counter(
    "proxmox_mcp_worker_requests", "Requests a worker served, by kind, op and outcome code.",
    ["kind", "op", "outcome"], registry=REGISTRY,
)
WORKER_REQUEST_DURATION = Histogram(
    "proxmox_mcp_worker_request_duration_seconds", "Worker-side request latency, by kind and op.",
    ["kind", "op"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
SSH_POOL_CONNECTIONS = Gauge(
    "proxmox_mcp_ssh_pool_connections", "Open pooled SSH connections.", ["cluster"], registry=REGISTRY,
)
SSH_CONNECTS = Counter(
    "proxmox_mcp_ssh_connects", "SSH connection attempts, by outcome (ok, auth_failed, host_key_mismatch, "
    "unreachable, timeout, error).", ["cluster", "outcome"], registry=REGISTRY,
)
SSH_RECONNECTS = Counter(
    "proxmox_mcp_ssh_reconnects", "Pooled SSH connections replaced after their transport died.", ["cluster"],
    registry=REGISTRY,
)
SSH_CONNECT_DURATION = Histogram(
    "proxmox_mcp_ssh_connect_duration_seconds", "Time to connect and authenticate one SSH connection.",
    ["cluster"], buckets=FAST_BUCKETS, registry=REGISTRY,
)
SSH_COMMANDS = Counter(
    "proxmox_mcp_ssh_commands", "Remote commands run, by result (ok, nonzero, timeout, denied, error).",
    ["cluster", "result"], registry=REGISTRY,
)
SSH_OUTPUT_TRUNCATED = Counter(
    "proxmox_mcp_ssh_output_truncated", "Command outputs cut at the output cap.", ["cluster"], registry=REGISTRY,
)
API_REQUESTS = Counter(
    "proxmox_mcp_api_requests", "Proxmox API requests, by method and status class (2xx..5xx, or 'error' when no "
    "HTTP answer came).", ["cluster", "method", "status_class"], registry=REGISTRY,
)
API_REQUEST_DURATION = Histogram(
    "proxmox_mcp_api_request_duration_seconds", "Proxmox API request latency, by method and status class.",
    ["cluster", "method", "status_class"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
API_CERT_EXPIRY = Gauge(
    "proxmox_mcp_api_certificate_expiry_timestamp_seconds", "notAfter of the Proxmox API's TLS certificate "
    "(Unix time), as seen by the api-worker.", ["cluster"], registry=REGISTRY,
)

# --- every process --------------------------------------------------------------------------------

BUILD_INFO = Gauge(
    "proxmox_mcp_build_info", "Always 1; labels say which service and version this process runs.",
    ["service", "version", "python_version"], registry=REGISTRY,
)
NATS_CONNECTED = Gauge(
    "proxmox_mcp_nats_connected", "1 while this process is connected to NATS.", registry=REGISTRY,
)
WORKER_IN_FLIGHT = Gauge(
    "proxmox_mcp_worker_requests_in_flight", "Requests a worker is handling right now.", ["kind"],
    registry=REGISTRY,
)


# --- functions the services call ----------------------------------------------------------------


def status_class(status: int | None) -> str:
    """'2xx'..'5xx' for an HTTP status; 'error' when no HTTP answer came (connect, TLS, timeout)."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def declare_tools(names: Iterable[str]) -> None:
    """The gateway's tool catalog: from now on any other tool name is counted as "other"."""
    _tool.close(names)


def observe_tool_call(tool: str, code: str | ErrorCode, seconds: float) -> None:
    """Once per tool call, when the gateway answers it (code 'ok' or the ErrorCode)."""
    name = _tool(tool)
    result = _code(code)
    TOOL_CALLS.labels(name, result).inc()
    TOOL_CALL_DURATION.labels(name).observe(max(seconds, 0.0))
    if result == ErrorCode.POLICY_DENIED.value:
        POLICY_DENIED.labels(name).inc()


class _InFlight:
    def __init__(self, tool: str) -> None:
        self._gauge = TOOL_CALLS_IN_FLIGHT.labels(_tool(tool))

    def __enter__(self) -> None:
        self._gauge.inc()

    def __exit__(self, *_exc: object) -> None:
        self._gauge.dec()


def tool_in_flight(tool: str) -> _InFlight:
    """`with tool_in_flight(name):` around the dispatch of one call."""
    return _InFlight(tool)


def count_rate_limited(tool: str | None, limit: str) -> None:
    """A 429: `limit` names the limit that was hit (token, tool, concurrency)."""
    RATE_LIMITED.labels(_tool(tool or "none"), _limit(limit)).inc()


def count_policy_denied(tool: str) -> None:
    """A policy denial decided outside a tool call result (e.g. in a worker). Tool results with code
    policy_denied are counted by observe_tool_call already."""
    POLICY_DENIED.labels(_tool(tool)).inc()


def count_auth_failure(reason: str) -> None:
    """reason: missing_token, invalid_token, expired, revoked, forbidden_address, forbidden_origin, ..."""
    AUTH_FAILURES.labels(_reason(reason)).inc()


def observe_nats_request(kind: str, outcome: str, seconds: float) -> None:
    """Matches the gateway bus's RequestObserver: WorkerBus(settings, observer=observe_nats_request)."""
    name = _kind(kind)
    NATS_REQUESTS.labels(name, _code(outcome)).inc()
    NATS_REQUEST_DURATION.labels(name).observe(max(seconds, 0.0))


def observe_task_wait(cluster: str, outcome: str, seconds: float) -> None:
    """outcome: ok (task ended OK), failed (ended with an error), timeout (still running), error."""
    TASK_WAIT_DURATION.labels(_cluster(cluster), _task_outcome(outcome)).observe(max(seconds, 0.0))


def set_probe(check: str, cluster: str, ok: bool, latency_seconds: float | None,
              last_success: float | None = None) -> None:
    labels = (_check(check), _cluster(cluster))
    PROBE_UP.labels(*labels).set(1 if ok else 0)
    if latency_seconds is not None:
        PROBE_LATENCY.labels(*labels).set(latency_seconds)
    if ok:
        PROBE_LAST_SUCCESS.labels(*labels).set(last_success or time.time())
    elif last_success is not None:
        PROBE_LAST_SUCCESS.labels(*labels).set(last_success)


class CheckLike(Protocol):
    status: str
    latency_ms: float | None
    last_success: float | None
    detail: dict[str, Any]


def health_listener(default_cluster: str) -> Callable[[str, CheckLike, str], None]:
    """The gateway HealthMonitor's listener: HealthMonitor(..., listener=health_listener(default_cluster))."""

    def listen(name: str, state: CheckLike, cluster: str = default_cluster) -> None:
        ok = state.status == "ok"
        latency = None if state.latency_ms is None else state.latency_ms / 1000.0
        set_probe(name, cluster, ok, latency, state.last_success)
        if name.endswith("-worker"):
            instances = state.detail.get("instances")
            if isinstance(instances, int):
                set_worker_instances(name.removesuffix("-worker"), instances)
            elif not ok:
                set_worker_instances(name.removesuffix("-worker"), 0)

    return listen


def set_worker_instances(kind: str, count: int) -> None:
    WORKER_INSTANCES.labels(_kind(kind)).set(count)


def observe_worker_op(kind: str, op: str, outcome: str, seconds: float) -> None:
    name = _kind(kind)
    operation = _op(op)
    WORKER_REQUESTS.labels(name, operation, _code(outcome)).inc()
    WORKER_REQUEST_DURATION.labels(name, operation).observe(max(seconds, 0.0))


def worker_observer(kind: str) -> Callable[[str, str, float], None]:
    """WorkerRuntime(..., observer=worker_observer("ssh")): (op, outcome, seconds) after each request."""

    def observe(op: str, outcome: str, seconds: float) -> None:
        observe_worker_op(kind, op, outcome, seconds)

    return observe


def track_worker_in_flight(kind: str, count: Callable[[], int]) -> None:
    """Read on every scrape, e.g. track_worker_in_flight("ssh", lambda: runtime.inflight)."""
    WORKER_IN_FLIGHT.labels(_kind(kind)).set_function(lambda: float(count()))


def set_ssh_pool_size(cluster: str, connections: int) -> None:
    SSH_POOL_CONNECTIONS.labels(_cluster(cluster)).set(connections)


def observe_ssh_connect(cluster: str, outcome: str, seconds: float, *, reconnect: bool = False) -> None:
    """outcome: ok, auth_failed, host_key_mismatch, unreachable, timeout, error."""
    name = _cluster(cluster)
    SSH_CONNECTS.labels(name, _ssh_outcome(outcome)).inc()
    if outcome == OK:
        SSH_CONNECT_DURATION.labels(name).observe(max(seconds, 0.0))
        if reconnect:
            SSH_RECONNECTS.labels(name).inc()


def observe_ssh_command(cluster: str, result: str, *, truncated: bool = False) -> None:
    """result: ok (exit 0), nonzero, timeout, denied, error."""
    name = _cluster(cluster)
    SSH_COMMANDS.labels(name, _command_result(result)).inc()
    if truncated:
        SSH_OUTPUT_TRUNCATED.labels(name).inc()


def observe_api_call(cluster: str, method: str, status: int | None, seconds: float) -> None:
    """One HTTP request to the Proxmox API; status None when no HTTP answer came."""
    labels = (_cluster(cluster), _method(method.upper()), status_class(status))
    API_REQUESTS.labels(*labels).inc()
    API_REQUEST_DURATION.labels(*labels).observe(max(seconds, 0.0))


def set_api_certificate_not_after(cluster: str, not_after: float) -> None:
    API_CERT_EXPIRY.labels(_cluster(cluster)).set(not_after)


def certificate_not_after(der: bytes) -> float:
    """notAfter (Unix time) of a DER certificate, e.g. from ssl_socket.getpeercert(binary_form=True)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def set_build_info(service: str, version: str) -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    BUILD_INFO.labels(service, version, python).set(1)


def set_nats_connected(connected: bool) -> None:
    NATS_CONNECTED.set(1 if connected else 0)


class NatsClientLike(Protocol):
    @property
    def is_connected(self) -> bool: ...

    @property
    def stats(self) -> Mapping[str, int]: ...


def watch_nats(client: Callable[[], NatsClientLike | None]) -> None:
    """Read the NATS connection state on every scrape: watch_nats(lambda: bus._nc) or lambda: nc."""

    def connected() -> float:
        nc = client()
        return 1.0 if nc is not None and nc.is_connected else 0.0

    NATS_CONNECTED.set_function(connected)
    _NATS_RECONNECTS_SOURCE[0] = client


_NATS_RECONNECTS_SOURCE: list[Callable[[], NatsClientLike | None] | None] = [None]


_NATS_RECONNECTS_HELP = "Times this process's NATS client reconnected (present once watch_nats() was called)."
_SRV_HELP = {
    "proxmox_mcp_worker_srv_requests": "Requests per worker endpoint from $SRV.STATS (summed over instances).",
    "proxmox_mcp_worker_srv_errors": "Error replies per worker endpoint from $SRV.STATS (summed over instances).",
    "proxmox_mcp_worker_srv_average_processing_seconds":
        "Mean processing time per worker endpoint from $SRV.STATS (weighted over instances).",
}


class _NatsReconnectsFromClient(Collector):
    """Reconnects as the watched NATS client counts them, read on every scrape."""

    def collect(self) -> Iterable[Metric]:
        source = _NATS_RECONNECTS_SOURCE[0]
        nc = source() if source is not None else None
        if nc is None:
            return []
        family = CounterMetricFamily("proxmox_mcp_nats_reconnects", _NATS_RECONNECTS_HELP)
        family.add_metric([], float(nc.stats.get("reconnects", 0)))
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily("proxmox_mcp_nats_reconnects", _NATS_RECONNECTS_HELP)]


_NATS_RECONNECTS = _NatsReconnectsFromClient()
REGISTRY.register(_NATS_RECONNECTS)


class AuditLike(Protocol):
    @property
    def failures(self) -> int: ...

    @property
    def written(self) -> int: ...

    @property
    def healthy(self) -> bool: ...


_AUDIT_HELP = {
    "proxmox_mcp_audit_records": "Audit records written durably by this gateway.",
    "proxmox_mcp_audit_write_failures": "Audit writes that failed (the calls they belonged to were refused).",
    "proxmox_mcp_audit_healthy": "1 while the last audit write succeeded, 0 after a failed one.",
}


class _AuditFromLog(Collector):
    """The gateway's audit log counters, read on every scrape (present once watch_audit() was called)."""

    def __init__(self) -> None:
        self.source: Callable[[], AuditLike | None] | None = None

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        records, failures, healthy = _AUDIT_HELP
        return (CounterMetricFamily(records, _AUDIT_HELP[records]),
                CounterMetricFamily(failures, _AUDIT_HELP[failures]),
                GaugeMetricFamily(healthy, _AUDIT_HELP[healthy]))

    def collect(self) -> Iterable[Metric]:
        log = self.source() if self.source is not None else None
        if log is None:
            return []
        records, failures, healthy = self._families()
        records.add_metric([], float(log.written))
        failures.add_metric([], float(log.failures))
        healthy.add_metric([], 1.0 if log.healthy else 0.0)
        return [records, failures, healthy]

    def describe(self) -> Iterable[Metric]:
        return list(self._families())


_AUDIT = _AuditFromLog()
REGISTRY.register(_AUDIT)


def watch_audit(source: Callable[[], AuditLike | None]) -> None:
    """Export the audit log's own counters: watch_audit(lambda: gateway.audit)."""
    _AUDIT.source = source


class SrvStatsCollector(Collector):
    """The workers' own `$SRV.STATS` counters, as the gateway last fetched them (summed over instances)."""

    def __init__(self) -> None:
        self._stats: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def update(self, kind: str, replies: list[dict[str, Any]]) -> None:
        with self._lock:
            self._stats[_kind(kind)] = list(replies)

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        requests, errors, average = _SRV_HELP
        return (
            CounterMetricFamily(requests, _SRV_HELP[requests], labels=["kind", "op"]),
            CounterMetricFamily(errors, _SRV_HELP[errors], labels=["kind", "op"]),
            GaugeMetricFamily(average, _SRV_HELP[average], labels=["kind", "op"]),
        )

    def collect(self) -> Iterable[Metric]:
        requests, errors, average = self._families()
        with self._lock:
            snapshot = {kind: list(replies) for kind, replies in self._stats.items()}
        for kind, replies in snapshot.items():
            totals: dict[str, list[float]] = {}
            for reply in replies:
                for endpoint in reply.get("endpoints") or []:
                    op = _op(_endpoint_op(endpoint))
                    row = totals.setdefault(op, [0.0, 0.0, 0.0])
                    row[0] += float(endpoint.get("num_requests") or 0)
                    row[1] += float(endpoint.get("num_errors") or 0)
                    row[2] += float(endpoint.get("processing_time") or 0) / 1e9
            for op, (count, failed, busy) in sorted(totals.items()):
                requests.add_metric([kind, op], count)
                errors.add_metric([kind, op], failed)
                average.add_metric([kind, op], busy / count if count else 0.0)
        return [requests, errors, average]

    def describe(self) -> Iterable[Metric]:
        return list(self._families())


def _endpoint_op(endpoint: Mapping[str, Any]) -> str:
    metadata = endpoint.get("metadata") or {}
    if isinstance(metadata, Mapping) and isinstance(metadata.get("op"), str):
        return str(metadata["op"])
    # Endpoint names are "<cluster>-<op>" and ops never contain "-".
    return str(endpoint.get("name", OTHER)).rsplit("-", 1)[-1]


SRV_STATS = SrvStatsCollector()
REGISTRY.register(SRV_STATS)


OWN_COLLECTORS: tuple[Counter | Gauge | Histogram | _NatsReconnectsFromClient | _AuditFromLog | SrvStatsCollector,
                      ...] = (
    *(value for value in list(globals().values()) if isinstance(value, Counter | Gauge | Histogram)),
    _NATS_RECONNECTS,
    _AUDIT,
    SRV_STATS,
)


def metric_families() -> list[Metric]:
    """The families (name and type) of our own metrics, without the process/platform/GC defaults."""
    return [family for collector in OWN_COLLECTORS for family in collector.describe()]


def metric_names() -> list[str]:
    """Every sample name proxmox-mcp itself exports (with _total/_bucket/_sum/_count), for tests and linting."""
    return sorted({name for family in metric_families() for name in _sample_names(family)})


def _sample_names(family: Metric) -> set[str]:
    if family.type == "counter":
        return {family.name + "_total"}
    if family.type == "histogram":
        return {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {family.name}
