"""What every process exports about itself: which service and version it runs, and its NATS connection."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxmox_mcp_runtime.metrics.registry import gauge, own

BUILD_INFO = gauge("proxmox_mcp_build_info", "Always 1; labels say which service and version this process runs.",
                   ["service", "version", "python_version"])


def set_build_info(service: str, version: str) -> None:
    BUILD_INFO.labels(service, version, platform.python_version()).set(1)


class NatsClientLike(Protocol):
    @property
    def is_connected(self) -> bool: ...

    @property
    def stats(self) -> Mapping[str, int]: ...


NatsSource = Callable[[], NatsClientLike | None]
"""Returns the process's NATS client, or None before it made one."""

_CONNECTED = "proxmox_mcp_nats_connected"
_RECONNECTS = "proxmox_mcp_nats_reconnects"
_HELP = {_CONNECTED: "1 while this process is connected to NATS (present once the process watches its client).",
         _RECONNECTS: "Times this process's NATS client reconnected (present once the process watches its client)."}


class _NatsConnection:
    """Read from the process's NATS client on every scrape. Nothing is exported until watch_nats() named the
    client: a constant 0 from a process that never connects would raise the disconnected alert forever."""

    def __init__(self) -> None:
        self.source: NatsSource | None = None

    def _families(self) -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        return GaugeMetricFamily(_CONNECTED, _HELP[_CONNECTED]), CounterMetricFamily(_RECONNECTS, _HELP[_RECONNECTS])

    def collect(self) -> Iterable[Metric]:
        if self.source is None:
            return []
        nc = self.source()
        connected, reconnects = self._families()
        connected.add_metric([], 1.0 if nc is not None and nc.is_connected else 0.0)
        reconnects.add_metric([], float(nc.stats.get("reconnects", 0)) if nc is not None else 0.0)
        return [connected, reconnects]

    def describe(self) -> Iterable[Metric]:
        return list(self._families())


_NATS = _NatsConnection()
own(_NATS)


def watch_nats(source: NatsSource) -> None:
    """Export this process's NATS connection, read on every scrape: watch_nats(lambda: bus.nats_client). The
    exporter is one per process, so a later call (a test building a second gateway) replaces the source."""
    _NATS.source = source
