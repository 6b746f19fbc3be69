"""`proxmox-mcp gateway`: run the HTTP gateway with uvicorn."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from proxmox_mcp_runtime.logs import configure_logging
from pydantic import ValidationError

from proxmox_mcp_gateway.app import build_app
from proxmox_mcp_gateway.clusters import ClusterConfigError
from proxmox_mcp_gateway.security import SecurityConfigError
from proxmox_mcp_gateway.settings import GatewaySettings


def uvicorn_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn settings the gateway needs. proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For
    from 127.0.0.1 and rewrite the client address before the gateway's own trusted-proxy check sees the peer."""
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                          proxy_headers=False, server_header=False, **{"timeout_graceful_shutdown": 10, **options})


def serve(settings: GatewaySettings) -> None:
    app = build_app(settings)
    uvicorn.Server(uvicorn_config(app, settings.host, settings.port)).run()


def main() -> None:
    configure_logging("gateway")
    try:
        settings = GatewaySettings()
        app = build_app(settings)
    except (ValidationError, SecurityConfigError, ClusterConfigError) as exc:
        print(f"error: gateway settings: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.Server(uvicorn_config(app, settings.host, settings.port)).run()


if __name__ == "__main__":
    main()
