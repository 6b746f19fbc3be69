"""What a worker measures about the requests it serves (both workers, through WorkerRuntime)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from proxmox_mcp_runtime.metrics.labels import code_label, kind_label, op_label
from proxmox_mcp_runtime.metrics.process import NatsClientLike, watch_nats
from proxmox_mcp_runtime.metrics.registry import LATENCY_BUCKETS, counter, gauge, histogram

WORKER_REQUESTS = counter("proxmox_mcp_worker_requests", "Requests a worker served, by kind, op and outcome code.",
                          ["kind", "op", "outcome"])
WORKER_REQUEST_DURATION = histogram("proxmox_mcp_worker_request_duration_seconds",
                                    "Worker-side request latency, by kind and op.", ["kind", "op"], LATENCY_BUCKETS)
WORKER_IN_FLIGHT = gauge("proxmox_mcp_worker_requests_in_flight", "Requests a worker is handling right now.",
                         ["kind"])


def worker_observer(kind: str) -> Callable[[str, str, float], None]:
    """WorkerRuntime(..., observer=worker_observer("ssh")): (op, outcome, seconds) after each request."""
    name = kind_label(kind)

    def observe(op: str, outcome: str, seconds: float) -> None:
        operation = op_label(op)
        WORKER_REQUESTS.labels(name, operation, code_label(outcome)).inc()
        WORKER_REQUEST_DURATION.labels(name, operation).observe(max(seconds, 0.0))

    return observe


class ServingWorker(Protocol):
    """What the exporter reads from a WorkerRuntime on every scrape."""

    @property
    def inflight(self) -> int: ...

    @property
    def nats_client(self) -> NatsClientLike | None: ...


def watch_worker(kind: str, runtime: ServingWorker) -> None:
    """Export the worker's in-flight requests and its NATS connection (one worker per process)."""
    WORKER_IN_FLIGHT.labels(kind_label(kind)).set_function(lambda: float(runtime.inflight))
    watch_nats(lambda: runtime.nats_client)
