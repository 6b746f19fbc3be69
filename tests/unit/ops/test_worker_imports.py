"""A worker process loads what it runs, not the gateway's web and MCP stack (each of those costs ~20 MiB of RSS
in every worker: compose, systemd and the demo start workers through the `proxmox-mcp` CLI)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

GATEWAY_ONLY = ("proxmox_mcp_gateway", "mcp", "starlette", "fastapi", "uvicorn", "sse_starlette")


@pytest.mark.parametrize("module", ["proxmox_mcp_ssh_worker.service", "proxmox_mcp_api_worker.service"])
def test_a_worker_started_through_the_cli_does_not_load_the_gateway(module: str) -> None:
    probe = (f"import sys, json, proxmox_mcp_cli.main, {module}; "
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                           check=True, timeout=60).stdout))
    assert not loaded & set(GATEWAY_ONLY), sorted(loaded & set(GATEWAY_ONLY))
