"""The gateway's Prometheus metrics (registered in the runtime's registry on import), and what build_gateway
hands its collaborators: observe_call for the executor, observe_nats_request for the bus, health_listener for
the health monitor."""

from __future__ import annotations

from collections.abc import Callable

from proxmox_mcp_runtime.metrics.process import NatsClientLike, set_build_info, watch_nats

from proxmox_mcp_gateway.metrics.audit import AuditLike, watch_audit
from proxmox_mcp_gateway.metrics.calls import CANCELLED, observe_call, observe_task_wait, tool_in_flight
from proxmox_mcp_gateway.metrics.http import HttpMetricsMiddleware, count_auth_failure
from proxmox_mcp_gateway.metrics.workers import health_listener, observe_nats_request

__all__ = ["CANCELLED", "HttpMetricsMiddleware", "count_auth_failure", "health_listener", "observe_call",
           "observe_nats_request", "observe_task_wait", "tool_in_flight", "watch_gateway"]


def watch_gateway(version: str, nats: Callable[[], NatsClientLike | None],
                  audit: Callable[[], AuditLike | None]) -> None:
    """Export what is read on every scrape: the build, the NATS connection and the audit log's counters."""
    set_build_info("gateway", version)
    watch_nats(nats)
    watch_audit(audit)
