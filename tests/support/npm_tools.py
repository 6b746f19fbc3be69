"""Real MCP clients from the npm registry (conformance suite, Claude Code), installed once into a cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.procs import find_binary

CACHE = Path(os.environ.get("PMCP_NPM_CACHE", Path.home() / ".cache" / "proxmox-mcp-tests" / "npm"))


def _unavailable(reason: str) -> NoReturn:
    """Skip locally; fail when CI sets PMCP_REQUIRE_BINARIES=1 (a missing tool must not pass as a skip)."""
    if os.environ.get("PMCP_REQUIRE_BINARIES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def npm_install(packages: list[str], name: str) -> Path:
    """Install packages into CACHE/name (once); skip with a reason when npm or the registry is unreachable."""
    npm = find_binary("npm")
    prefix = CACHE / name
    marker = prefix / ".installed"
    wanted = " ".join(packages)
    if marker.exists() and marker.read_text() == wanted:
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "package.json").write_text('{"name": "pmcp-test-tools", "private": true}\n')
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
        cwd=prefix, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        text = result.stderr + result.stdout
        if any(s in text for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network")):
            _unavailable(f"the npm registry is unreachable: {text.strip().splitlines()[-1] if text else ''}")
        raise RuntimeError(f"npm install {wanted} failed:\n{text[-3000:]}")
    marker.write_text(wanted)
    return prefix
