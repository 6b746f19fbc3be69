"""Every metric family proxmox-mcp exports, over all its processes: each service's metrics module registers its
families in the runtime's registry on import, so load them all before asking."""

from __future__ import annotations

import importlib

from prometheus_client.core import Metric
from proxmox_mcp_runtime.metrics.registry import metric_families, metric_names

METRIC_MODULES = (
    "proxmox_mcp_runtime.metrics.process",  # every process
    "proxmox_mcp_runtime.metrics.worker",  # both workers
    "proxmox_mcp_runtime.metrics.ssh",  # the ssh-worker, and the api-worker's tunnel and pvesh modes
    "proxmox_mcp_api_worker.metrics",
    "proxmox_mcp_gateway.metrics",
)


def _load() -> None:
    for module in METRIC_MODULES:
        importlib.import_module(module)


def all_metric_families() -> list[Metric]:
    _load()
    return metric_families()


def all_metric_names() -> list[str]:
    """Every sample name (with _total/_bucket/_sum/_count) some proxmox-mcp process can export."""
    _load()
    return metric_names()
