"""`proxmox-mcp gateway`: run the HTTP gateway with uvicorn."""

from __future__ import annotations

import uvicorn
from proxmox_mcp_runtime.logs import configure_logging

from proxmox_mcp_gateway.app import build_app
from proxmox_mcp_gateway.settings import GatewaySettings


def serve(settings: GatewaySettings) -> None:
    app = build_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()


def main() -> None:
    configure_logging("gateway")
    serve(GatewaySettings())


if __name__ == "__main__":
    main()
