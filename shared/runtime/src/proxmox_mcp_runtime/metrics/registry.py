"""The one registry this process exports, and the families proxmox-mcp itself adds to it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

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
from prometheus_client.core import Metric

# `_created` series double the count of every counter for a timestamp nobody alerts on. Process-wide on purpose:
# this module is imported before any metric is made.
disable_created_metrics()

PREFIX = "proxmox_mcp_"
REGISTRY = CollectorRegistry(auto_describe=True)
for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_default)

ALLOWED_LABELS = frozenset(
    {"tool", "code", "outcome", "op", "kind", "method", "status_class", "cluster", "check", "handler", "limit",
     "reason", "result", "service", "version", "python_version"}
)

# Seconds. 1, 3 and 5 are bucket bounds so the p95 alerts (health 1 s, API 3 s, command 5 s) are exact.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)



class OwnCollector(Protocol):
    """A collector that can name its families before it has samples (so tests and docs see them all)."""

    def collect(self) -> Iterable[Metric]: ...

    def describe(self) -> Iterable[Metric]: ...


_OWN: list[OwnCollector] = []


def own(collector: OwnCollector) -> None:
    """Register one of our own collectors (a custom one; counter/gauge/histogram below do this themselves)."""
    REGISTRY.register(collector)
    _OWN.append(collector)


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in our registry; prometheus-client appends `_total` to `name`."""
    metric = Counter(name, documentation, labels, registry=None)
    own(metric)
    return metric


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    metric = Gauge(name, documentation, labels, registry=None)
    own(metric)
    return metric


def histogram(name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> Histogram:
    metric = Histogram(name, documentation, labels, buckets=buckets, registry=None)
    own(metric)
    return metric


def labelled_metrics() -> list[Counter | Gauge | Histogram]:
    """Our counters, gauges and histograms (for checks on their label names)."""
    return [c for c in _OWN if isinstance(c, Counter | Gauge | Histogram)]


def metric_families() -> list[Metric]:
    """The families (name and type) of our own metrics this process has loaded, without the process/platform/GC
    defaults. Each service's metrics module registers on import: load them all to see every family."""
    return [family for collector in _OWN for family in collector.describe()]


def metric_names() -> list[str]:
    """Every sample name of metric_families() (with _total/_bucket/_sum/_count)."""
    return sorted({name for family in metric_families() for name in sample_names(family)})


def sample_names(family: Metric) -> set[str]:
    if family.type == "counter":
        return {family.name + "_total"}
    if family.type == "histogram":
        return {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {family.name}
