"""`proxmox-mcp stdio`: MCP on stdin/stdout; uses NATS_URL when set, otherwise an embedded stack."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import anyio
from proxmox_mcp_gateway.security import load_command_profiles
from proxmox_mcp_gateway.server import START_ERRORS, refuse_start
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.stdio import run_stdio
from proxmox_mcp_runtime import event_loop
from proxmox_mcp_runtime.config import load_proxmox_config

from proxmox_mcp_cli.gateway_settings import check_embedded_state, with_stack
from proxmox_mcp_cli.stack import EmbeddedStack, config_for_sim, shared_worker_env


def run_stdio_stack(*, demo: bool) -> int:
    external = os.environ.get("NATS_URL")
    try:  # before anything starts; NATS_URL is one of the settings' own variables
        settings = GatewaySettings()
        load_command_profiles(settings)
        loop = {"loop_factory": event_loop.loop_factory()}
        if demo or not external:
            check_embedded_state(settings)
    except START_ERRORS as exc:
        return refuse_start(exc)
    if external and not demo:
        anyio.run(run_stdio, settings, backend_options=loop)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="proxmox-mcp-stdio-"))
    stack = EmbeddedStack(workdir, log_level=os.environ.get("LOG_LEVEL", "INFO"),
                          worker_env=shared_worker_env(settings.command_profiles))
    try:
        nats_url = stack.start_nats()
        config = config_for_sim(stack.start_sim()) if demo else load_proxmox_config()
        config_path = stack.write_config(config)
        stack.start_workers(nats_url, config_path)
        settings = with_stack(settings, nats_url=nats_url, config_path=config_path)
        anyio.run(run_stdio, settings, 30.0, backend_options=loop)
        return 0
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
