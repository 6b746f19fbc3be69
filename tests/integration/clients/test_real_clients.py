"""A real MCP client accepts the demo: Claude Code's `claude mcp list` (the suite: test_conformance_suite.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.demo import DemoStack
from tests.support.npm_tools import npm_install


@pytest.mark.npm
def test_claude_code_lists_the_demo_as_connected(demo: DemoStack, tmp_path: Path) -> None:
    prefix = npm_install(["@anthropic-ai/claude-code"], "claude-code")
    claude = prefix / "node_modules" / ".bin" / "claude"
    env = {**os.environ, "HOME": str(tmp_path), "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_TELEMETRY": "1",
           "DISABLE_TELEMETRY": "1", "CI": "1"}
    add = subprocess.run(
        [str(claude), "mcp", "add", "--transport", "http", "proxmox", demo.mcp_url,
         "--header", f"Authorization: Bearer {demo.token}"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert add.returncode == 0, add.stdout + add.stderr
    listed = subprocess.run([str(claude), "mcp", "list"], capture_output=True, text=True, timeout=120, env=env,
                            cwd=tmp_path)
    line = next((ln for ln in listed.stdout.splitlines() if ln.startswith("proxmox")), "")
    assert "Connected" in line, listed.stdout + listed.stderr
