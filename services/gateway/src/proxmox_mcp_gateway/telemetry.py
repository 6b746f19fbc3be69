"""Wires the gateway's hooks (calls, NATS requests, probes, audit, HTTP refusals) to the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from proxmox_mcp_runtime import metrics as m

from proxmox_mcp_gateway import __version__
from proxmox_mcp_gateway.catalog import TOOLS


def observe_call(tool: str, code: str, seconds: float, details: dict[str, Any]) -> None:
    """CallSecurity.observer: once per tool call, whatever its outcome."""
    m.observe_tool_call(tool, code, seconds)
    if code == "rate_limited":
        m.count_rate_limited(tool, str(details.get("limit") or "token"))


def install_gateway_metrics(gateway: Any) -> None:
    """gateway is a proxmox_mcp_gateway.app.Gateway (typed loosely to keep this module import-light)."""
    m.declare_tools(spec.name for spec in TOOLS)
    m.set_build_info("gateway", __version__)
    gateway.bus.observer = m.observe_nats_request
    gateway.health.listener = m.health_listener(gateway.settings.default_cluster)
    if gateway.executor.security.observer is None:
        gateway.executor.security.observer = observe_call
    m.watch_nats(lambda: gateway.bus.nats_client)
    m.watch_audit(lambda: gateway.audit)
