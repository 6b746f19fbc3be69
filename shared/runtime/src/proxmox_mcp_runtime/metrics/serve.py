"""Serving the registry: a /metrics port of its own (workers), or the exposition for a route (the gateway)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from proxmox_mcp_runtime.metrics.process import set_build_info
from proxmox_mcp_runtime.metrics.registry import REGISTRY

log = logging.getLogger(__name__)

PORT_ENV = "PMCP_METRICS_PORT"
HOST_ENV = "PMCP_METRICS_HOST"
DEFAULT_HOST = "127.0.0.1"


class MetricsConfigError(ValueError):
    """PMCP_METRICS_PORT / PMCP_METRICS_HOST cannot be used; the message says what to fix."""


@dataclass
class MetricsServer:
    host: str
    port: int
    _server: WSGIServer
    _thread: Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(port: int, host: str = DEFAULT_HOST) -> MetricsServer:
    """Serve /metrics from a daemon thread (port 0 picks a free port; see .port)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise MetricsConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return MetricsServer(host=host, port=int(server.server_address[1]), _server=server, _thread=thread)


def metrics_settings(env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """(host, port) from PMCP_METRICS_HOST / PMCP_METRICS_PORT; None when the port is unset (metrics off)."""
    source = os.environ if env is None else env
    raw = (source.get(PORT_ENV) or "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        raise MetricsConfigError(f"{PORT_ENV} must be a port number (0-65535), not {raw!r}") from None
    if not 0 <= port <= 65535:
        raise MetricsConfigError(f"{PORT_ENV} must be a port number (0-65535), not {port}")
    host = (source.get(HOST_ENV) or DEFAULT_HOST).strip()
    return host, port


def serve_metrics_from_env(service: str, version: str, env: Mapping[str, str] | None = None) -> MetricsServer | None:
    """For workers: set build info, then serve /metrics if PMCP_METRICS_PORT is set (off by default)."""
    set_build_info(service, version)
    settings = metrics_settings(env)
    if settings is None:
        return None
    server = start_metrics_server(settings[1], settings[0])
    log.info("serving metrics", extra={"metrics_url": server.url})
    return server


def render_latest() -> tuple[bytes, str]:
    """The exposition body and its content type, for a framework route of your own."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
