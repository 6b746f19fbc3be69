"""The audit log's own counters, read on every scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from proxmox_mcp_runtime.metrics.registry import own


class AuditLike(Protocol):
    @property
    def failures(self) -> int: ...

    @property
    def written(self) -> int: ...

    @property
    def healthy(self) -> bool: ...


_RECORDS = "proxmox_mcp_audit_records"
_FAILURES = "proxmox_mcp_audit_write_failures"
_HEALTHY = "proxmox_mcp_audit_healthy"
_HELP = {
    _RECORDS: "Audit records written durably by this gateway.",
    _FAILURES: "Audit writes that failed (the calls they belonged to were refused).",
    _HEALTHY: "1 while the last audit write succeeded, 0 after a failed one.",
}


class _AuditCounters:
    """Nothing is exported until watch_audit() names the gateway's audit log (a gateway may run without one)."""

    def __init__(self) -> None:
        self.source: Callable[[], AuditLike | None] | None = None

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (CounterMetricFamily(_RECORDS, _HELP[_RECORDS]), CounterMetricFamily(_FAILURES, _HELP[_FAILURES]),
                GaugeMetricFamily(_HEALTHY, _HELP[_HEALTHY]))

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


_AUDIT = _AuditCounters()
own(_AUDIT)


def watch_audit(source: Callable[[], AuditLike | None]) -> None:
    """Export the audit log's counters: watch_audit(lambda: gateway.audit). One exporter per process, so a later
    call (a test building a second gateway) replaces the source."""
    _AUDIT.source = source
