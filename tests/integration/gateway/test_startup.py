"""Starting the gateway (alone, in the demo, over stdio) with settings that cannot work: exit status 2, the
environment variable named with what is wrong, and nothing started."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.support.nats import NatsServer
from tests.support.procs import free_port, start_process, wait_until

ENTRY_POINTS = {
    "gateway": ["gateway"],
    "demo": ["demo", "--port", "0"],
    "stdio": ["stdio", "--demo"],
}


BAD_SETTINGS = {
    "event-loop": ({"PMCP_EVENT_LOOP": "tokio"}, "PMCP_EVENT_LOOP='tokio' is not one of auto, uvloop, asyncio"),
    "rate-limit": ({"PMCP_RATE_LIMIT": "lots"}, "PMCP_RATE_LIMIT: rate limit 'lots': expected N/PERIOD"),
    "port": ({"PMCP_PORT": "70000"}, "PMCP_PORT: Input should be less than or equal to 65535"),
    "command-profiles": ({"PMCP_COMMAND_PROFILES": "/nonexistent/profiles.toml"},
                         "PMCP_COMMAND_PROFILES: /nonexistent/profiles.toml does not exist"),
}
CASES = [(entry, bad) for entry in ENTRY_POINTS for bad in BAD_SETTINGS
         if not (entry == "demo" and bad == "port")]  # the demo takes its port from --port


@pytest.mark.parametrize("entry, bad", CASES, ids=[f"{entry}-{bad}" for entry, bad in CASES])
def test_a_setting_that_cannot_work_stops_it_naming_the_variable(tmp_path: Path, entry: str, bad: str) -> None:
    env, message = BAD_SETTINGS[bad]
    full = {"NATS_URL": "nats://127.0.0.1:1", "PMCP_PORT": str(free_port()), "PMCP_STATE_DIR": str(tmp_path / "state"),
            "PMCP_TOKEN": "startup-" + tmp_path.name, "TMPDIR": str(tmp_path), **env}
    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", *ENTRY_POINTS[entry]]
    proc = start_process(f"{entry}-bad", argv, tmp_path, env=full)
    try:
        wait_until(lambda: not proc.alive(), timeout=30, what=f"the misconfigured {entry} to exit")
    finally:
        proc.stop()
    log = proc.log_text()
    assert proc.popen.returncode == 2, log
    assert f"error: gateway settings: {message}" in log, log
    assert "Traceback" not in log and "pydantic.dev" not in log, log
    assert not any(tmp_path.glob("proxmox-mcp-*")), "nothing is started before the settings are checked"


def test_a_port_in_use_stops_the_gateway_with_the_reason_and_nothing_left_running(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"NATS_URL": nats_server.url, "PMCP_PORT": str(taken.getsockname()[1]),
               "PMCP_STATE_DIR": str(tmp_path / "state"), "PMCP_TOKEN": "startup-" + tmp_path.name}
        proc = start_process("gateway-port-taken", [sys.executable, "-m", "proxmox_mcp_cli.main", "gateway"], tmp_path,
                             env=env)
        try:
            wait_until(lambda: not proc.alive(), timeout=30, what="the gateway to give up on the taken port")
        finally:
            proc.stop()
    log = proc.log_text()
    assert proc.popen.returncode != 0 and "address already in use" in log, log
    # The NATS connection begun at start-up is closed before the loop ends, not abandoned half-open.
    assert "Task was destroyed but it is pending" not in log and "Event loop is closed" not in log, log
