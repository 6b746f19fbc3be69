"""Our own services as real processes: workers and the gateway, configured like a deployment would."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tests.support.procs import Proc, free_port, start_process, wait_until


def write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def start_worker(kind: str, nats_url: str, config_path: Path, workdir: Path, *, name: str | None = None,
                 env: dict[str, str] | None = None) -> Proc:
    """kind is 'ssh-worker' or 'api-worker'; returns once the process runs (readiness: see wait_for_service)."""
    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", kind]
    full_env = {"NATS_URL": nats_url, "PMCP_CONFIG": str(config_path), "LOG_LEVEL": "INFO", **(env or {})}
    return start_process(name or kind, argv, workdir, env=full_env)


@dataclass
class GatewayProc:
    proc: Proc
    url: str
    token: str

    @property
    def base_url(self) -> str:
        return self.url.removesuffix("/mcp")


def start_gateway(nats_url: str, workdir: Path, *, token: str | None = None,
                  env: dict[str, str] | None = None, port: int | None = None) -> GatewayProc:
    """port: when the caller must know it first (e.g. for the OAuth resource URL); default a free one."""
    port = port or free_port()
    secret = token or "gw-" + os.urandom(16).hex()
    token_file = write_private(workdir / f"gateway-{port}.token", secret)
    # Token store and audit log stay in the test's directory (never the user's ~/.local/state).
    full_env = {"NATS_URL": nats_url, "PMCP_PORT": str(port), "PMCP_TOKEN_FILE": str(token_file),
                "PMCP_STATE_DIR": str(workdir / f"gateway-{port}-state"), "LOG_LEVEL": "INFO", **(env or {})}
    proc = start_process(f"gateway-{port}", [sys.executable, "-m", "proxmox_mcp_cli.main", "gateway"], workdir,
                         env=full_env)

    def answers() -> bool:
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    wait_until(answers, timeout=30, what="the gateway to answer /health", proc=proc, interval=0.05)
    return GatewayProc(proc=proc, url=f"http://127.0.0.1:{port}/mcp", token=secret)


def wait_ready(gateway: GatewayProc, timeout: float = 30) -> None:
    """Until /health/ready says NATS and both worker kinds are there."""

    def ready() -> bool:
        try:
            return httpx2.get(f"{gateway.base_url}/health/ready", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    wait_until(ready, timeout=timeout, what="the gateway to be ready", proc=gateway.proc, interval=0.05)
