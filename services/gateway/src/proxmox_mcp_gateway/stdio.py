"""`proxmox-mcp stdio`: the same MCP server over stdin/stdout for local clients."""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio
from mcp.server.stdio import stdio_server
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.subjects import WorkerKind

from proxmox_mcp_gateway.app import build_gateway, fixtures_for
from proxmox_mcp_gateway.mcp_server import build_mcp_server
from proxmox_mcp_gateway.settings import GatewaySettings


async def run_stdio(settings: GatewaySettings, wait_for_workers: float = 0.0) -> None:
    """Serve MCP on stdin/stdout; optionally wait (up to wait_for_workers s) until both worker kinds answer."""
    gateway = build_gateway(settings)
    caller = Caller(token_id="stdio", scope=settings.stdio_scope, command_profile=settings.stdio_profile)
    server = build_mcp_server(gateway.executor, stdio_caller=caller, fixtures=fixtures_for(gateway))
    await gateway.bus.connect()
    # Shared state (PMCP_STATE=jetstream): the audit stream and shared limits; loaded in the background, calls
    # fail closed until the cluster answers.
    loading = asyncio.create_task(gateway.keeper.run())
    if gateway.freeze is not None:
        gateway.freeze.start()
        await gateway.freeze.on_connected()
    deadline = time.monotonic() + wait_for_workers
    while time.monotonic() < deadline:
        kinds = (WorkerKind.SSH, WorkerKind.API)
        if all([await gateway.bus.any_service(kind, timeout=0.2) for kind in kinds]):
            break
        await anyio.sleep(0.05)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        await gateway.keeper.close()
        if gateway.freeze is not None:
            await gateway.freeze.stop()
        await gateway.state.close()
        await gateway.bus.close()
        if gateway.audit is not None:
            await gateway.audit.close()  # anchors the audit chain's head


def main(settings: GatewaySettings | None = None) -> None:
    anyio.run(run_stdio, settings or GatewaySettings())
