"""The gateways' shared state as the CLI reaches it (`token`, `audit`): the same settings as the gateway
(PMCP_STATE, NATS_URL, PMCP_STATE_REPLICAS, the token and audit files), and a short-lived NATS connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import nats.errors
from nats.aio.client import Client as NatsClient
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_runtime.settings_errors import describe_settings_error
from proxmox_mcp_runtime.worker import nats_servers
from pydantic import ValidationError


class StateCliError(Exception):
    """What the user must fix (the message says it); exit status 2."""


def gateway_settings() -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as exc:
        raise StateCliError(f"gateway settings: {describe_settings_error(exc, GatewaySettings)}") from None


@contextlib.asynccontextmanager
async def nats_connection(settings: GatewaySettings, name: str) -> AsyncGenerator[NatsClient]:
    """Connected to one of NATS_URL's servers, or StateCliError; closed afterwards. Never prints the URL, which
    may carry credentials."""
    nc = NatsClient()
    try:
        # Patient enough for a slow name lookup of the cluster's nodes (container DNS under load), bounded.
        await nc.connect(servers=nats_servers(settings.nats_url), name=name, connect_timeout=5,
                         allow_reconnect=True, max_reconnect_attempts=4, reconnect_time_wait=1)
    except (nats.errors.NoServersError, OSError, TimeoutError, ValueError) as exc:
        raise StateCliError(f"cannot connect to NATS (NATS_URL, {type(exc).__name__}): is the cluster up and "
                            "NATS_URL right?") from None
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
