"""`proxmox-mcp gateway`: run the HTTP gateway with uvicorn."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from proxmox_mcp_runtime.event_loop import EventLoopError, loop_choice
from proxmox_mcp_runtime.logs import configure_logging
from proxmox_mcp_runtime.settings_errors import describe_settings_error
from pydantic import ValidationError

from proxmox_mcp_gateway.app import Gateway, build_app
from proxmox_mcp_gateway.clusters import ClusterConfigError
from proxmox_mcp_gateway.drain import DrainingServer
from proxmox_mcp_gateway.security import SecurityConfigError
from proxmox_mcp_gateway.settings import GatewaySettings


def uvicorn_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn settings the gateway needs. proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For
    from 127.0.0.1 and rewrite the client address before the gateway's own trusted-proxy check sees the peer.
    The loop (uvloop unless PMCP_EVENT_LOOP says otherwise) applies when uvicorn makes its own loop."""
    settings: dict[str, Any] = {"timeout_graceful_shutdown": 10, **options}
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                          proxy_headers=False, server_header=False, loop=loop_choice(), **settings)


START_ERRORS = (ValidationError, SecurityConfigError, ClusterConfigError, EventLoopError)
"""What a gateway start can fail with because of its settings (exit 2, problem named by refuse_start)."""


def refuse_start(exc: Exception) -> int:
    """Name the problem in the words of the environment (PMCP_RATE_LIMIT: ..., not a pydantic dump); exit status 2."""
    problem = describe_settings_error(exc, GatewaySettings) if isinstance(exc, ValidationError) else str(exc)
    print(f"error: gateway settings: {problem}", file=sys.stderr)
    return 2


def draining_server(app: Any, settings: GatewaySettings) -> DrainingServer:
    """The server for `app` (built by build_app): SIGTERM drains for PMCP_DRAIN_DELAY before it stops."""
    gateway: Gateway = app.state.gateway
    return DrainingServer(uvicorn_config(app, settings.host, settings.port), gateway.drain)


def serve(settings: GatewaySettings) -> None:
    draining_server(build_app(settings), settings).run()


def main() -> None:
    configure_logging("gateway")
    try:
        settings = GatewaySettings()
        server = draining_server(build_app(settings), settings)
    except START_ERRORS as exc:
        sys.exit(refuse_start(exc))
    server.run()


if __name__ == "__main__":
    main()
