"""The systemd units' commands, run natively from the scratch-root install: each ExecStart with its
Environment= lines and a credentials directory (%d) holding exactly its LoadCredential= files, against the
simulator. Proves the env names, the credential layout and the relative key path work together."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_runtime.config import dump_config_toml

from tests.support.compose import NativeStack
from tests.support.procs import Proc, start_process, wait_until
from tests.support.sim import SimInfo, start_sim
from tests.support.systemd import ScratchInstall, install_into, unit_credentials, unit_environment, unit_settings

ORDER = ("proxmox-mcp-nats.service", "proxmox-mcp-ssh-worker.service", "proxmox-mcp-api-worker.service",
         "proxmox-mcp-gateway.service")
UNIT_PORTS = (4222, 8222, 8080, 9464, 9465)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    info = start_sim(tmp_path_factory.mktemp("systemd-sim"))
    try:
        yield info
    finally:
        info.proc.stop()


@dataclass
class RunningUnits:
    scratch: ScratchInstall
    stack: NativeStack
    procs: dict[str, Proc]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.ports[8080]}"


def _sim_config(sim: SimInfo) -> str:
    fields = {name: getattr(sim, name) for name in vars(sim) if name != "proc"}
    cluster = config_for_sim(fields)
    ssh = cluster.clusters[0].ssh.model_copy(update={"key_path": Path("id_ed25519")})
    return dump_config_toml(cluster.model_copy(update={"clusters": [cluster.clusters[0].model_copy(
        update={"ssh": ssh})]}))


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory, sim: SimInfo) -> Iterator[RunningUnits]:
    scratch = install_into(tmp_path_factory.mktemp("systemd-native"))
    creds = scratch.credentials
    shutil.copy(sim.ssh_private_key, creds / "id_ed25519")
    (creds / "clusters.toml").write_text(_sim_config(sim))
    stack = NativeStack(scratch.root)
    for port in UNIT_PORTS:
        stack.port(port)
    mounts = {"/opt/proxmox-mcp": scratch.root / "opt" / "proxmox-mcp",
              "/var/lib/proxmox-mcp": scratch.root / "var" / "lib" / "proxmox-mcp"}
    procs: dict[str, Proc] = {}
    try:
        for unit in ORDER:
            path = scratch.unit_dir / unit
            credentials_dir = scratch.root / "run" / "credentials" / unit
            credentials_dir.mkdir(parents=True)
            for name, source in unit_credentials(path).items():
                target = credentials_dir / name
                shutil.copy(scratch.root / source.relative_to("/"), target)
                target.chmod(0o400)
            for state in unit_settings(path).get("StateDirectory", []):
                (scratch.root / "var" / "lib" / state).mkdir(parents=True, exist_ok=True)
            argv = [stack.translate(arg, mounts) for arg in shlex.split(unit_settings(path)["ExecStart"][0])]
            env = {k: stack.translate(v, mounts) for k, v in unit_environment(path, credentials_dir).items()}
            clean = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "PROXMOX_", "PMCP_"))}
            procs[unit] = start_process(unit, argv, scratch.root / "logs", env={**clean, **env})
        running = RunningUnits(scratch=scratch, stack=stack, procs=procs)
        wait_until(lambda: _ready(running), timeout=60, what="the gateway unit to be ready",
                   proc=procs["proxmox-mcp-gateway.service"], interval=0.2)
        yield running
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()


def _ready(units: RunningUnits) -> bool:
    try:
        return httpx2.get(f"{units.gateway_url}/health/ready", timeout=2).status_code == 200
    except httpx2.HTTPError:
        return False


def test_the_units_come_up_ready(units: RunningUnits) -> None:
    for unit, proc in units.procs.items():
        assert proc.alive(), (unit, proc.log_text()[-2000:])


def test_a_tool_call_works_with_the_installed_token_and_the_credential_relative_key(units: RunningUnits) -> None:
    token = (units.scratch.credentials / "gateway-token").read_text().strip()
    for tool, arguments in (("list_vms", {}), ("execute_command", {"command": "hostname"})):
        response = httpx2.post(f"{units.gateway_url}/api/mcp/tools/call", timeout=30,
                               headers={"Authorization": f"Bearer {token}"},
                               json={"name": tool, "arguments": arguments})
        assert response.status_code == 200, response.text
        assert response.json()["isError"] is False, response.text


def test_the_worker_metrics_ports_of_the_units_answer(units: RunningUnits) -> None:
    for port in (9464, 9465):
        body = httpx2.get(f"http://127.0.0.1:{units.stack.ports[port]}/metrics", timeout=5).text
        assert "proxmox_mcp_build_info" in body
