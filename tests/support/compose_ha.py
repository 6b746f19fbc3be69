"""The compose `ha` profile on a real container engine, brought up with the README's commands (one stack per
session): three NATS nodes in one JetStream cluster, two gateways sharing their state there, two of each worker
and Caddy in front of both gateways, with the demo simulator behind them.

As for the demo stack (tests/support/compose_stack.py), the README's lines run as written, in bash; from the
environment come only what lets the stack run beside others on this machine (project name, loopback ports,
scratch config dir, another edge subnet), one tool rate limit for the cross-gateway test, and a test-only
override that publishes each gateway on loopback so a test can call one gateway and then the other.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.compose_stack import ComposeStack, podman_engine, stack_env
from tests.support.containers import container_engine
from tests.support.procs import REPO_ROOT, free_port, wait_until
from tests.support.readme import readme_block

PROJECT = "pmcp-test-ha"
GATEWAY_PORTS = REPO_ROOT / "tests" / "support" / "compose-ha-gateways.yml"
COMPOSE_FILES = [REPO_ROOT / "docker-compose.yml", GATEWAY_PORTS]
HA_UP = "nats-1 nats-2 nats-3 gateway-1 gateway-2"
"""Part of the README's `up` line that tells its code block apart."""
NATS_NODES = ("nats-1", "nats-2", "nats-3")
GATEWAYS = ("gateway-1", "gateway-2")
RATED_TOOL = "node_status"
RATE = 5


def ha_block() -> list[str]:
    return readme_block(HA_UP)


def up_commands(podman: bool) -> list[str]:
    """The README's HA `up` line; on podman after the podman note's engine and build lines, without `--build`
    (as the README says: compose cannot build through podman's API)."""
    up = ha_block()[0]
    if not podman:
        return [up]
    engine_and_build = [line for line in readme_block("scripts/container-engine")
                        if line.startswith(("eval ", "scripts/build-images"))]
    return [*engine_and_build, re.sub(r"\s--build\b", "", up)]


@dataclass
class HaStack(ComposeStack):
    gateway_ports: tuple[int, int] = (0, 0)

    def gateway_url(self, index: int) -> str:
        """gateway-1 (index 0) or gateway-2 (index 1), directly, on its test-only loopback port."""
        return f"http://127.0.0.1:{self.gateway_ports[index]}"

    def exec_input(self, service: str, *argv: str, stdin: str = "", timeout: float = 120) -> str:
        result = subprocess.run(["docker", "compose", "exec", "-T", service, *argv], input=stdin,
                                capture_output=True, text=True, timeout=timeout, env=self.env, cwd=self.workdir,
                                check=False)
        if result.returncode != 0:
            raise AssertionError(f"exec {service} {argv} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def nats_monitor(self, path: str, via: str = "gateway-1") -> dict[str, dict[str, Any] | None]:
        """Every NATS node's monitoring answer to `path` (None: no answer), asked from inside the `nats`
        network (it is internal: nothing on the host reaches it)."""
        code = "\n".join([
            "import json, sys, urllib.request as u",
            "found = {}",
            "for node in sys.argv[2:]:",
            "    try: found[node] = json.load(u.urlopen(f'http://{node}:8222' + sys.argv[1], timeout=2))",
            "    except Exception: found[node] = None",
            "print(json.dumps(found))",
        ])
        return dict(json.loads(self.exec(via, "python", "-c", code, path, *NATS_NODES)))

    def meta_leader(self) -> str | None:
        """The JetStream meta leader every node names, or None while they do not all agree."""
        leaders = {((jsz or {}).get("meta_cluster") or {}).get("leader") for jsz in self.nats_monitor("/jsz").values()}
        return leaders.pop() if len(leaders) == 1 else None

    def stream_replicas(self, stream: str) -> dict[str, dict[str, Any] | None]:
        """Per node: its own replica's state of `stream` (messages, last_seq) and the cluster info; None when the
        node does not hold it or does not answer."""
        found: dict[str, dict[str, Any] | None] = {}
        for node, jsz in self.nats_monitor("/jsz?accounts=true&streams=true").items():
            found[node] = None
            for account in (jsz or {}).get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") == stream:
                        found[node] = {**detail.get("state", {}), "cluster": detail.get("cluster", {})}
        return found

    def kill_main_process(self, service: str, index: int = 1) -> tuple[str, int]:
        """SIGKILL a container's main process from the host (the restart policy ignores a `docker kill`).
        Returns the container id and its restart count before."""
        container = self.containers(service)[index - 1]
        pid = int(container["State"]["Pid"])
        assert pid > 1
        os.kill(pid, signal.SIGKILL)
        return str(container["Id"]), int(container["RestartCount"])

    def restarted(self, container_id: str, restarts_before: int) -> bool:
        now = next((c for c in self.containers() if c["Id"] == container_id), None)
        return now is not None and now["State"]["Running"] and int(now["RestartCount"]) > restarts_before


def ha_env(workdir: Path, https_port: int, gateway_ports: tuple[int, int]) -> dict[str, str]:
    env = stack_env(workdir, https_port, free_port(), free_port())
    for name in ("PMCP_PROMETHEUS_PORT", "PMCP_GRAFANA_PORT", "PMCP_TEST_SIM_PORT"):
        env.pop(name)
    return {
        **env,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": os.pathsep.join(str(f) for f in COMPOSE_FILES),
        "PMCP_TEST_GATEWAY_1_PORT": str(gateway_ports[0]),
        "PMCP_TEST_GATEWAY_2_PORT": str(gateway_ports[1]),
        # Beside the demo stack's test subnet (172.30.199.0/24) and a developer's own (172.30.101.0/24).
        "PMCP_EDGE_SUBNET": "172.30.198.0/24",
        "PMCP_EDGE_IP_RANGE": "172.30.198.128/25",
        "PMCP_CADDY_IP": "172.30.198.10",
        "PMCP_TOOL_RATE_LIMITS": f"{RATED_TOOL}={RATE}/m",
    }


def start_ha_stack(workdir: Path) -> HaStack:
    """Start the `ha` profile (with the demo simulator) with the README's commands; wait until every container
    is healthy."""
    host = container_engine()
    https_port, gateway_ports = free_port(), (free_port(), free_port())
    stack = HaStack(workdir=workdir, env=ha_env(workdir, https_port, gateway_ports), https_port=https_port,
                    prometheus_port=0, sim_port=0, profiles=("ha", "demo"), gateway_ports=gateway_ports)
    stack.down()  # what an interrupted earlier run left
    ups = up_commands(podman_engine(host))
    stack.up_line = ups[-1]
    after = [stack.localize(line) for line in ha_block()[1:]]
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
                            env=stack.env, cwd=workdir, timeout=1800, check=False)
    stack.log = result.stderr
    if result.returncode != 0:
        logs = stack.compose("logs", "--tail", "30", check=False).stdout[-6000:]
        stack.down()
        pytest.fail(f"the README's compose HA commands failed ({result.returncode}):\n{script}\n--- stderr\n"
                    f"{result.stderr[-5000:]}\n--- logs\n{logs}")
    stack.token = (workdir / "token").read_text().strip()
    stack.wait_healthy()
    wait_until(lambda: stack.meta_leader() is not None, timeout=60, interval=1,
               what="the three NATS nodes to agree on a JetStream meta leader")
    stack.log += f"\nha stack up with the README's commands in {time.monotonic() - started:.1f} s\n"
    return stack
