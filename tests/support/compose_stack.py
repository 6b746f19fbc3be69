"""The compose demo stack on a real container engine, brought up with the README's own commands.

The README's lines run as written, in bash; only what a test needs to run beside a developer's own stack on the
same machine comes from the environment: the project name, loopback host ports (Caddy, and Prometheus through
the README's local-ports override), a scratch config dir, another edge subnet, and a test-only override that
publishes the simulator's API on loopback (to compare tool answers with the simulator's own state).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.containers import container_engine
from tests.support.procs import REPO_ROOT, free_port, wait_until
from tests.support.readme import readme_block

PROJECT = "pmcp-test"
LOCAL_PORTS = REPO_ROOT / "deploy" / "docker" / "compose.local-ports.yml"
SIM_API = REPO_ROOT / "tests" / "support" / "compose-sim-api.yml"
COMPOSE_FILES = [REPO_ROOT / "docker-compose.yml", LOCAL_PORTS, SIM_API]
SERVICE_USER = "10001"


def podman_engine(host: str) -> bool:
    return "proxmox-mcp-engine" in host or "podman" in host


def up_commands(podman: bool) -> list[str]:
    """The README's lines that build and start the demo: the podman note's on podman, else the main block's."""
    if podman:
        return readme_block("scripts/container-engine")
    return readme_block("--profile demo up -d --build")[:1]


def after_up_commands() -> list[str]:
    """The README's lines after `up`: token, Caddy's CA, a health check, Claude Code."""
    return readme_block("--profile demo up -d --build")[1:]


@dataclass
class ComposeStack:
    workdir: Path
    env: dict[str, str]
    https_port: int
    prometheus_port: int
    sim_port: int
    up_line: str = ""
    """The README's `docker compose ... up` line this stack was started with."""
    log: str = ""
    token: str = ""
    sim: dict[str, Any] = field(default_factory=dict)
    profiles: tuple[str, ...] = ("demo",)
    """The profiles whose services `stop` and `down` remove."""

    @property
    def ca_file(self) -> Path:
        return self.workdir / "caddy-root.crt"

    def url(self, path: str) -> str:
        return f"https://localhost:{self.https_port}{path}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def localize(self, line: str) -> str:
        """A README line with the test's host port in Caddy's URLs."""
        return line.replace("https://localhost/", f"https://localhost:{self.https_port}/")

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", "compose", *args], capture_output=True, text=True, timeout=timeout,
                                env=self.env, cwd=self.workdir, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return result

    def exec(self, service: str, *argv: str, index: int = 1, user: str | None = None) -> str:
        extra = ["--user", user] if user else []
        return self.compose("exec", "-T", "--index", str(index), *extra, service, *argv).stdout

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[dict[str, Any]]:
        """`docker inspect` of the project's containers (of one service), sorted by name."""
        args = ["ps", "--format", "{{.ID}}", "--all"] if all_states else ["ps", "--format", "{{.ID}}"]
        ids = self.compose(*args, *([service] if service else [])).stdout.split()
        if not ids:
            return []
        inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, env=self.env,
                                   timeout=60, check=True).stdout
        return sorted(json.loads(inspected), key=lambda c: str(c["Name"]))

    def health(self) -> dict[str, str]:
        """Container name -> health (`healthy`, `starting`, ...), or its state where it has no healthcheck."""
        found: dict[str, str] = {}
        for container in self.containers():
            state = container["State"]
            health = (state.get("Health") or {}).get("Status") or ""
            found[container["Name"].lstrip("/")] = health or state["Status"]
        return found

    def wait_healthy(self, timeout: float = 180) -> None:
        wait_until(lambda: all(h in ("healthy", "running") for h in self.health().values()), timeout=timeout,
                   what=f"every container healthy (now {self.health()})", interval=1)

    def rest_call(self, name: str, arguments: dict[str, Any], *, token: str | None = None,
                  headers: dict[str, str] | None = None) -> httpx2.Response:
        return httpx2.post(self.url("/api/mcp/tools/call"), json={"name": name, "arguments": arguments},
                           headers={"Authorization": f"Bearer {token or self.token}", **(headers or {})},
                           verify=self.tls(), timeout=60)

    def prometheus(self, expr: str) -> list[dict[str, Any]]:
        body = httpx2.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def up(self) -> None:
        """The README's `up` line again (on a stack that was brought `down`)."""
        self.compose(*shlex.split(self.up_line)[2:], timeout=600)
        self.wait_healthy()

    def _profile_args(self) -> list[str]:
        return [arg for profile in self.profiles for arg in ("--profile", profile)]

    def stop(self) -> None:
        """Remove the containers and networks; the volumes (tokens, audit, CA) stay for `up`."""
        self.compose(*self._profile_args(), "down", "--timeout", "5", check=False, timeout=180)

    def down(self) -> None:
        self.compose(*self._profile_args(), "down", "--volumes", "--remove-orphans", "--timeout", "5", check=False,
                     timeout=180)


def stack_env(workdir: Path, https_port: int, prometheus_port: int, sim_port: int) -> dict[str, str]:
    config_dir = workdir / "config"
    config_dir.mkdir(exist_ok=True)
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": os.pathsep.join(str(f) for f in COMPOSE_FILES),
        "PMCP_CONFIG_DIR": str(config_dir),
        "PMCP_HTTP_PUBLISH": f"127.0.0.1:{free_port()}",
        "PMCP_HTTPS_PUBLISH": f"127.0.0.1:{https_port}",
        "PMCP_PROMETHEUS_PORT": str(prometheus_port),
        "PMCP_GRAFANA_PORT": str(free_port()),
        "PMCP_TEST_SIM_PORT": str(sim_port),
        # Beside a developer's own demo (172.30.101.0/24) on the same machine.
        "PMCP_EDGE_SUBNET": "172.30.199.0/24",
        "PMCP_EDGE_IP_RANGE": "172.30.199.128/25",
        "PMCP_CADDY_IP": "172.30.199.10",
        # One tool limited to one call a minute: the dashboard's "Refused requests" panel needs a refusal.
        "PMCP_TOOL_RATE_LIMITS": "cluster_status=1/m",
        "LOG_LEVEL": "INFO",
    }


def start_stack(workdir: Path) -> ComposeStack:
    """Build the images and start the demo with the README's commands; wait until every container is healthy."""
    host = container_engine()
    https_port, prometheus_port, sim_port = free_port(), free_port(), free_port()
    env = stack_env(workdir, https_port, prometheus_port, sim_port)
    stack = ComposeStack(workdir=workdir, env=env, https_port=https_port, prometheus_port=prometheus_port,
                         sim_port=sim_port)
    stack.down()  # what an interrupted earlier run left
    ups = up_commands(podman_engine(host))
    stack.up_line = next(line for line in ups if line.startswith("docker compose") and " up " in line)
    after = [stack.localize(line) for line in after_up_commands() if not line.startswith(("claude", "NODE_"))]
    script = "\n".join([
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO_ROOT))}",
        *ups,
        f"cd {shlex.quote(str(workdir))}",
        *after,
        'printf "%s" "$TOKEN" > token',
    ])
    (workdir / "readme-commands.sh").write_text(script + "\n")
    started = time.monotonic()
    result = subprocess.run(["bash", str(workdir / "readme-commands.sh")], capture_output=True, text=True,
                            env=env, cwd=workdir, timeout=1800, check=False)
    stack.log = result.stderr
    if result.returncode != 0:
        logs = stack.compose("logs", "--tail", "30", check=False).stdout[-6000:]
        stack.down()
        pytest.fail(f"the README's compose commands failed ({result.returncode}):\n{script}\n--- stderr\n"
                    f"{result.stderr[-5000:]}\n--- logs\n{logs}")
    stack.token = (workdir / "token").read_text().strip()
    stack.wait_healthy()
    stack.sim = sim_info(stack)
    stack.log += f"\nstack up with the README's commands in {time.monotonic() - started:.1f} s\n"
    return stack


def sim_info(stack: ComposeStack) -> dict[str, Any]:
    """The containerised simulator's ready line, with its API as published on loopback for the tests."""
    info = dict(json.loads(stack.exec("pve-sim", "cat", "/data/ready.json")))
    cert = stack.workdir / "pve-ssl.pem"
    cert.write_text(stack.exec("pve-sim", "cat", "/data/pve-ssl.pem"))
    info["api_url"] = f"https://127.0.0.1:{stack.sim_port}/api2/json"
    info["cert_file"] = str(cert)
    return info


def build_table(log: str) -> str:
    """scripts/build-images' table of images, build times and sizes, out of the commands' stderr."""
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^image\s+how\s+seconds", line)), None)
    if start is None:
        return ""
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("total")), len(lines) - 1)
    return "\n".join(lines[start:end + 1])
