"""deploy/docker/healthcheck.py, the compose services' healthcheck: passes on a healthy target, fails with the
reason on each kind of unhealthy one."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.procs import REPO_ROOT

HEALTHCHECK = REPO_ROOT / "deploy" / "docker" / "healthcheck.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), "--timeout", "2", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def test_a_listening_port_and_an_existing_file_are_healthy(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text("{}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        result = run("--file", str(ready), f"tcp://127.0.0.1:{server.getsockname()[1]}")
    assert (result.returncode, result.stderr) == (0, "")


def test_a_missing_file_a_closed_port_and_an_unknown_scheme_are_each_named(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    result = run("--file", str(tmp_path / "ready.json"), f"tcp://127.0.0.1:{closed}",
                 f"http://127.0.0.1:{closed}/health", "ftp://x")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"unhealthy: {tmp_path / 'ready.json'} is missing"
    assert lines[1].startswith(f"unhealthy: tcp://127.0.0.1:{closed}: ")
    assert lines[2].startswith(f"unhealthy: http://127.0.0.1:{closed}/health: ")
    assert lines[3] == "unhealthy: ftp://x: give an http:// or tcp:// address"


def test_an_http_error_status_is_unhealthy_and_2xx_is_healthy() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503 if self.path == "/down" else 200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert run(f"{base}/up").returncode == 0
        down = run(f"{base}/down")
        assert (down.returncode, down.stderr.strip()) == (1, f"unhealthy: {base}/down: HTTP 503")
    finally:
        server.shutdown()
        server.server_close()
