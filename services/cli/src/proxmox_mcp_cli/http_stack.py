"""`proxmox-mcp demo` and `proxmox-mcp up`: the embedded stack plus the HTTP gateway in this process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from proxmox_mcp_gateway.app import Gateway, build_app
from proxmox_mcp_gateway.security import load_command_profiles
from proxmox_mcp_gateway.server import START_ERRORS, refuse_start, uvicorn_config

from proxmox_mcp_cli.gateway_settings import http_gateway_settings, with_stack
from proxmox_mcp_cli.stack import EmbeddedStack, StackInfo, shared_worker_env

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn would re-raise SIGTERM after shutdown and skip our cleanup; we handle signals ourselves."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class HttpStackOptions:
    host: str | None
    """--host (None: PMCP_HOST, else 127.0.0.1)."""
    port: int | None
    """--port (None: PMCP_PORT, else 8080; 0 picks a free one)."""
    token: str | None
    """--token (None: PMCP_TOKEN / PMCP_TOKEN_FILE, else a random one)."""
    ready_timeout: float = 60.0
    log_level: str = "INFO"
    info_file: Path | None = None
    """Where to write the stack's details as JSON (mode 0600: it holds the token), for scripts and tests."""


def banner(url: str, token: str, demo: bool, info: StackInfo) -> str:
    add = f"claude mcp add --transport http proxmox {url} --header {shlex.quote('Authorization: Bearer ' + token)}"
    lines = [
        "",
        f"proxmox-mcp {'demo (simulated cluster)' if demo else 'stack'} is ready",
        f"  MCP URL:      {url}",
        f"  Bearer token: {token}",
        f"  Health:       {url.removesuffix('/mcp')}/health",
        f"  NATS:         {info.nats_url}",
        "",
        "Add it to Claude Code:",
        f"  {add}",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def write_info_file(path: Path, url: str, token: str, info: StackInfo, stack: EmbeddedStack) -> None:
    details = {
        "mcp_url": url,
        "token": token,
        "nats_url": info.nats_url,
        "pid": os.getpid(),
        "children": {child.name: child.popen.pid for child in stack.group.children},
        "sim": info.sim,
    }
    # Written beside, then renamed: whoever waits for the file never reads it half-written.
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(details, handle)
    os.replace(partial, path)


async def _wait_ready(gateway: Gateway, server: uvicorn.Server, stack: EmbeddedStack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.group.check_alive()
        if server.started and gateway.bus.connected:
            await gateway.health.refresh_workers()
            if gateway.health.ready():
                gateway.health.poke()
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the stack did not become ready within {timeout} s (logs in {stack.workdir / 'logs'})")


async def run_http_stack(
    options: HttpStackOptions, prepare: Callable[[EmbeddedStack], StackInfo], *, demo: bool
) -> int:
    try:  # before anything starts
        settings = http_gateway_settings(options.host, options.port, options.token)
        load_command_profiles(settings)
    except START_ERRORS as exc:
        return refuse_start(exc)
    workdir = Path(tempfile.mkdtemp(prefix="proxmox-mcp-"))
    stack = EmbeddedStack(workdir, log_level=options.log_level,
                          worker_env=shared_worker_env(settings.command_profiles))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            info = prepare(stack)
            # The demo keeps its audit log and token store in its temp dir; `up` keeps them in the state dir.
            settings = with_stack(settings, nats_url=info.nats_url, config_path=info.config_path,
                                  state_dir=workdir / "state" if demo else None)
            app = build_app(settings)
        except START_ERRORS as exc:
            return refuse_start(exc)
        token = settings.bearer_secret() or ""
        gateway: Gateway = app.state.gateway
        server = _QuietServer(uvicorn_config(app, settings.host, settings.port, timeout_graceful_shutdown=5))
        serving = asyncio.create_task(server.serve())
        ready = asyncio.create_task(_wait_ready(gateway, server, stack, options.ready_timeout))
        await asyncio.wait({ready, serving, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and ready.exception() is None and not stop.is_set():
            port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
            url = f"http://{settings.host}:{port}/mcp"
            if options.info_file is not None:
                write_info_file(options.info_file, url, token, info, stack)
            print(banner(url, token, demo, info), flush=True)
            await asyncio.wait({serving, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        elif ready.done() and ready.exception() is not None:
            print(f"error: {ready.exception()}", file=sys.stderr)
            server.should_exit = True
            await serving
            return 1
        ready.cancel()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        return 0
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
