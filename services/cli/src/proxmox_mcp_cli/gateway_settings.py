"""The gateway's settings in the stacks the CLI runs (`up`, `demo`, `stdio`): the environment (the env file is
already under it, see main), the command line over it, and what the stack itself decides over both."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from proxmox_mcp_gateway.security import SecurityConfigError
from proxmox_mcp_gateway.settings import GatewaySettings
from pydantic import SecretStr


def http_gateway_settings(host: str | None, port: int | None, token: str | None) -> GatewaySettings:
    """`up` and `demo`: --host and --port over PMCP_HOST and PMCP_PORT; the bearer token is --token, else
    PMCP_TOKEN / PMCP_TOKEN_FILE, else a new random one."""
    command_line: dict[str, Any] = {name: value for name, value in (("host", host), ("port", port))
                                    if value is not None}
    settings = GatewaySettings(**command_line)
    try:
        secret = token or settings.bearer_secret()
    except OSError as exc:
        raise SecurityConfigError(f"PMCP_TOKEN_FILE: cannot read it ({type(exc).__name__})") from None
    check_embedded_state(settings)
    return settings.model_copy(update={"token": SecretStr(secret or secrets.token_urlsafe(32)), "token_file": None})


def check_embedded_state(settings: GatewaySettings) -> GatewaySettings:
    """The embedded stacks run one NATS server and one gateway: state shared through a NATS cluster has no
    place there, so PMCP_STATE=jetstream is refused before anything starts instead of being ignored."""
    if settings.state == "jetstream":
        raise SecurityConfigError("PMCP_STATE=jetstream needs a NATS cluster shared by several gateways; `up`, "
                                  "`demo` and `stdio` without NATS_URL run one embedded NATS server and one gateway "
                                  "with local state: unset PMCP_STATE, or run the services one by one (systemd, "
                                  "compose) with NATS_URL")
    return settings


def with_stack(settings: GatewaySettings, *, nats_url: str, config_path: Path,
               state_dir: Path | None = None) -> GatewaySettings:
    """The stack's own NATS and cluster config in place of NATS_URL and PMCP_CONFIG (the gateway takes its
    cluster names from that config unless PMCP_CLUSTERS names them), and the demo's own state dir."""
    update: dict[str, Any] = {"nats_url": nats_url, "config": config_path}
    if state_dir is not None:
        update["state_dir"] = state_dir
    return settings.model_copy(update=update)
