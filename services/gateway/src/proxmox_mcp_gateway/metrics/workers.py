"""The workers as the gateway sees them: NATS requests, health probes, instances answering $SRV.PING."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from proxmox_mcp_runtime.metrics.labels import BoundedLabel, cluster_label, code_label, kind_label
from proxmox_mcp_runtime.metrics.registry import LATENCY_BUCKETS, counter, gauge, histogram

NATS_REQUESTS = counter("proxmox_mcp_nats_requests",
                        "Gateway-to-worker NATS requests, by worker kind and outcome code.", ["kind", "outcome"])
NATS_REQUEST_DURATION = histogram("proxmox_mcp_nats_request_duration_seconds",
                                  "Gateway-to-worker NATS request latency (incl. the worker's work).", ["kind"],
                                  LATENCY_BUCKETS)
PROBE_UP = gauge("proxmox_mcp_probe_up", "1 when the last health probe of a component succeeded, else 0 "
                 "(check: nats, ssh-worker, api-worker, ssh, api).", ["check", "cluster"])
PROBE_LATENCY = gauge("proxmox_mcp_probe_latency_seconds", "Latency of the last health probe.", ["check", "cluster"])
PROBE_LAST_SUCCESS = gauge("proxmox_mcp_probe_last_success_timestamp_seconds",
                           "Unix time of the last successful probe.", ["check", "cluster"])
WORKER_INSTANCES = gauge("proxmox_mcp_worker_instances",
                         "Worker instances that answered the last $SRV.PING, by kind.", ["kind"])

_check = BoundedLabel(r"[a-z][a-z0-9_-]{0,31}", 16)


def observe_nats_request(kind: str, outcome: str, seconds: float) -> None:
    """The bus's RequestObserver: WorkerBus(settings, observer=observe_nats_request)."""
    name = kind_label(kind)
    NATS_REQUESTS.labels(name, code_label(outcome)).inc()
    NATS_REQUEST_DURATION.labels(name).observe(max(seconds, 0.0))


class CheckLike(Protocol):
    status: str
    latency_ms: float | None
    last_success: float | None
    detail: dict[str, Any]


def health_listener(default_cluster: str) -> Callable[[str, CheckLike, str], None]:
    """The HealthMonitor's listener: HealthMonitor(..., listener=health_listener(default_cluster))."""

    def listen(name: str, state: CheckLike, cluster: str = default_cluster) -> None:
        ok = state.status == "ok"
        labels = (_check(name), cluster_label(cluster))
        PROBE_UP.labels(*labels).set(1 if ok else 0)
        if state.latency_ms is not None:
            PROBE_LATENCY.labels(*labels).set(state.latency_ms / 1000.0)
        if ok:
            PROBE_LAST_SUCCESS.labels(*labels).set(state.last_success or time.time())
        elif state.last_success is not None:
            PROBE_LAST_SUCCESS.labels(*labels).set(state.last_success)
        if name.endswith("-worker"):
            instances = state.detail.get("instances")
            if isinstance(instances, int):
                WORKER_INSTANCES.labels(kind_label(name.removesuffix("-worker"))).set(instances)
            elif not ok:
                WORKER_INSTANCES.labels(kind_label(name.removesuffix("-worker"))).set(0)

    return listen
