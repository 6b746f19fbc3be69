"""Real MCP clients from the npm registry (conformance suite, Claude Code), installed once into a cache. Locally a
missing npm or an unreachable registry skips; with PMCP_REQUIRE_BINARIES=1 (CI) it fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

CACHE = Path(os.environ.get("PMCP_NPM_CACHE", Path.home() / ".cache" / "proxmox-mcp-tests" / "npm"))


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("PMCP_REQUIRE_BINARIES") == "1":
        pytest.fail(f"{reason} (PMCP_REQUIRE_BINARIES=1: npm packages are required)")
    pytest.skip(reason)


def npm_install(packages: list[str], name: str) -> Path:
    """Install packages into CACHE/name (once); skip (fail in CI) when npm or the registry is unreachable."""
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed")
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
