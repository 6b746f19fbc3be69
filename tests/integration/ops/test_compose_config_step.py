"""The compose `config` step, run natively with the exact argv compose gives it (paths mapped to temp dirs)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_runtime.command_policy import load_profiles_file

from tests.support.compose import NativeService, NativeStack, compose_model, container_ports, native_service

OWNER = (10001, 10001) if os.geteuid() == 0 else (os.getuid(), os.getgid())
GRAFANA_OWNER = (472, 0) if os.geteuid() == 0 else (os.getuid(), os.getgid())


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return compose_model()


class ConfigStep:
    def __init__(self, model: dict[str, Any], root: Path, *, sim_running: bool = False) -> None:
        self.source = root / "operator-config"
        self.source.mkdir(mode=0o755)
        self.stack = NativeStack(root, sim_running=sim_running)
        for port in container_ports(model):
            self.stack.port(port)
        self.service: NativeService = native_service(model, "config", self.stack, {"/config": self.source})
        self.worker_dir = self.stack.volume_dir("worker-config")
        self.gateway_dir = self.stack.volume_dir("gateway-secrets")
        self.grafana_dir = self.stack.volume_dir("grafana-secrets")

    def run(self, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "PROXMOX_", "PMCP_"))}
        return subprocess.run(self.service.argv, capture_output=True, text=True, timeout=60, check=False,
                              env={**clean, **(env or {})})

    def add_key(self, name: str = "id_ed25519", mode: int = 0o600) -> Path:
        path = self.source / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        path.chmod(mode)
        return path

    def write(self, name: str, text: str, mode: int = 0o600) -> Path:
        path = self.source / name
        path.write_text(text)
        path.chmod(mode)
        return path

    def worker_config(self) -> dict[str, Any]:
        return tomllib.loads((self.worker_dir / "clusters.toml").read_text())


CLUSTERS = """
[[clusters]]
name = "lab"
[[clusters.hosts]]
node = "pve1"
address = "10.0.0.11"
[clusters.ssh]
user = "pmcp"
key_path = "id_ed25519"
host_key_fingerprints = ["SHA256:abc"]
[clusters.api]
host = "10.0.0.11"
user = "pmcp@pve"
token_name = "mcp"
token_value = "not-a-real-secret"
fingerprint = "AA:BB"
"""


@pytest.fixture
def step(model: dict[str, Any], tmp_path: Path) -> ConfigStep:
    return ConfigStep(model, tmp_path)


def _owner_and_mode(path: Path) -> tuple[tuple[int, int], int]:
    info = path.stat()
    return (info.st_uid, info.st_gid), stat.S_IMODE(info.st_mode)


def test_an_operator_config_is_copied_with_its_key_for_the_service_user(step: ConfigStep) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS, mode=0o644)
    result = step.run()
    assert result.returncode == 0, result.stderr
    assert "1 cluster(s) (lab) from ./config" in result.stdout
    config = step.worker_config()
    key = Path(config["clusters"][0]["ssh"]["key_path"])
    assert key.parent.parent == step.worker_dir
    assert key.read_bytes() == (step.source / "id_ed25519").read_bytes()
    assert config["clusters"][0]["api"]["token_value"] == "not-a-real-secret"
    for path in (step.worker_dir / "clusters.toml", key, step.gateway_dir / "token", step.gateway_dir / "audit_key"):
        assert _owner_and_mode(path) == (OWNER, 0o600), path
    audit_key = (step.gateway_dir / "audit_key").read_text().strip()
    assert "audit key: generated" in result.stdout and len(audit_key) >= 32 and audit_key not in result.stdout
    assert _owner_and_mode(step.grafana_dir / "admin_password") == (GRAFANA_OWNER, 0o600)
    assert "not-a-real-secret" not in result.stdout + result.stderr
    token = (step.gateway_dir / "token").read_text().strip()
    assert len(token) >= 40 and token not in result.stdout


def test_the_generated_token_survives_a_rerun_and_a_given_one_wins(step: ConfigStep) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    assert step.run().returncode == 0
    first = (step.gateway_dir / "token").read_text()
    first_audit_key = (step.gateway_dir / "audit_key").read_text()
    rerun = step.run()
    assert "kept (generated earlier)" in rerun.stdout
    assert (step.gateway_dir / "token").read_text() == first
    assert (step.gateway_dir / "audit_key").read_text() == first_audit_key  # else the chain would restart
    step.write("gateway_token", "operator-chosen-token-value\n")
    assert "from ./config/gateway_token" in step.run().stdout
    assert (step.gateway_dir / "token").read_text().strip() == "operator-chosen-token-value"


def test_the_request_state_key_is_generated_once_for_every_gateway_and_a_given_one_wins(step: ConfigStep) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    first = step.run()
    assert first.returncode == 0 and "request-state key" in first.stdout and "generated" in first.stdout
    key_file = step.gateway_dir / "request_state_key"
    key = key_file.read_text().strip()
    assert len(key.encode()) >= 32 and key not in first.stdout + first.stderr
    assert _owner_and_mode(key_file) == (OWNER, 0o600)
    rerun = step.run()
    assert rerun.returncode == 0 and key_file.read_text().strip() == key  # kept: sealed state stays valid
    given = "k" * 20 + secrets.token_hex(16)
    step.write("request_state_key", given + "\n")
    assert "from ./config/request_state_key" in step.run().stdout
    assert key_file.read_text().strip() == given


def test_a_short_or_world_readable_request_state_key_is_refused_with_the_fix(step: ConfigStep) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    step.write("request_state_key", "too-short\n")
    short = step.run()
    assert short.returncode == 2
    assert "./config/request_state_key is too short (9 bytes, at least 32)" in short.stderr
    assert "openssl rand" in short.stderr and not (step.gateway_dir / "request_state_key").exists()
    step.write("request_state_key", secrets.token_hex(32), mode=0o644)
    readable = step.run()
    assert readable.returncode == 2 and "chmod 600 ./config/request_state_key" in readable.stderr


def test_a_world_readable_key_is_refused_with_the_chmod_fix(step: ConfigStep) -> None:
    step.add_key(mode=0o644)
    step.write("clusters.toml", CLUSTERS)
    result = step.run()
    assert result.returncode == 2
    assert "chmod 600 ./config/id_ed25519" in result.stderr
    assert not (step.worker_dir / "clusters.toml").exists()


def test_a_key_outside_the_config_dir_is_refused_naming_the_field(step: ConfigStep) -> None:
    step.write("clusters.toml", CLUSTERS.replace('key_path = "id_ed25519"', 'key_path = "/home/me/.ssh/id"'))
    result = step.run()
    assert result.returncode == 2
    assert "ssh.key_path of cluster 'lab'" in result.stderr and "/home/me/.ssh/id" in result.stderr


def test_a_stale_simulator_ready_file_is_ignored_when_the_simulator_is_not_running(step: ConfigStep) -> None:
    (step.stack.volume_dir("sim-data") / "ready.json").write_text("{}")
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    result = step.run()
    assert result.returncode == 0, result.stderr
    assert "(lab) from ./config" in result.stdout


def test_invalid_toml_is_refused_naming_the_file(step: ConfigStep) -> None:
    step.write("clusters.toml", "[[clusters]\nname=")
    result = step.run()
    assert result.returncode == 2
    assert "./config/clusters.toml is not valid TOML" in result.stderr
    assert str(step.source) not in result.stderr


def test_nothing_configured_points_at_the_docs_and_the_demo(step: ConfigStep) -> None:
    result = step.run()
    assert result.returncode == 2
    assert "no cluster configured" in result.stderr
    assert "docker compose --profile demo up" in result.stderr


def test_the_original_environment_variables_work_with_files_in_the_config_dir(step: ConfigStep) -> None:
    step.add_key()
    result = step.run({"SSH_HOST": "10.0.0.11", "SSH_USER": "pmcp", "SSH_KEY_PATH": "id_ed25519",
                       "SSH_HOST_KEY_FINGERPRINT": "SHA256:abc", "PROXMOX_HOST": "10.0.0.11",
                       "PROXMOX_USER": "pmcp@pve", "PROXMOX_TOKEN_NAME": "mcp",
                       "PROXMOX_TOKEN_VALUE": "not-a-real-secret"})
    assert result.returncode == 0, result.stderr
    cluster = step.worker_config()["clusters"][0]
    assert cluster["hosts"] == [{"node": "10.0.0.11", "address": "10.0.0.11"}]
    assert Path(cluster["ssh"]["key_path"]).is_file()


PROFILES = '[profiles.hostinfo]\n[[profiles.hostinfo.rules]]\nprogram = "hostname"\n'


def _service_env(model: dict[str, Any], service: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in (model["services"][service].get("environment") or {}).items()}


def test_the_gateway_and_both_workers_are_given_one_command_profiles_file(
    model: dict[str, Any], step: ConfigStep
) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    step.write("command_profiles.toml", PROFILES, mode=0o644)
    result = step.run()
    assert result.returncode == 0, result.stderr
    assert "command profiles: hostinfo from ./config/command_profiles.toml" in result.stdout
    volumes = {"gateway": step.gateway_dir, "ssh-worker": step.worker_dir, "api-worker": step.worker_dir}
    for service, volume in volumes.items():
        path = Path(_service_env(model, service)["PMCP_COMMAND_PROFILES"])
        copied = volume / path.name
        assert copied.read_text() == PROFILES, service
        assert _owner_and_mode(copied) == (OWNER, 0o600), service
        assert set(load_profiles_file(copied)) == {"hostinfo"}


def test_without_a_command_profiles_file_the_services_get_the_built_in_profiles_only(step: ConfigStep) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    result = step.run()
    assert result.returncode == 0, result.stderr
    assert "command profiles: none given (built-in profiles only)" in result.stdout
    for volume in (step.gateway_dir, step.worker_dir):
        assert load_profiles_file(volume / "command_profiles.toml") == {}


def test_an_unusable_command_profiles_file_is_refused_naming_it(step: ConfigStep) -> None:
    step.add_key()
    step.write("clusters.toml", CLUSTERS)
    step.write("command_profiles.toml", '[[profiles.x.rules]]\nprogram = "ls"\nscope = "god"\n')
    result = step.run()
    assert result.returncode == 2
    assert "./config/command_profiles.toml: profiles.x.rules[0].scope" in result.stderr, result.stderr
    assert str(step.source) not in result.stderr


def test_with_the_simulator_up_the_workers_get_its_cluster(model: dict[str, Any], tmp_path: Path) -> None:
    step = ConfigStep(model, tmp_path, sim_running=True)
    sim_dir = step.stack.volume_dir("sim-data")
    sim_key = sim_dir / "client_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sim_key)], check=True)
    info = {"host": "0.0.0.0", "api_port": 8006, "ssh_port": 2222, "nodes": ["pve1", "pve2"],
            "ssh_user": "root", "ssh_private_key": str(sim_key), "ssh_host_key_fingerprint": "SHA256:xyz",
            "fingerprint": "AB:CD", "admin_token": {"user": "root@pam", "token_id": "admin", "secret": "s3"}}
    (sim_dir / "ready.json").write_text(json.dumps(info))
    step.write("clusters.toml", CLUSTERS)  # the demo profile wins over an operator config
    result = step.run()
    assert result.returncode == 0, result.stderr
    assert "demo, pointing at pve-sim" in result.stdout
    cluster = step.worker_config()["clusters"][0]
    assert cluster["api"]["host"] == "localhost"  # compose: pve-sim
    assert {h["address"] for h in cluster["hosts"]} == {"localhost"}
    assert [h["node"] for h in cluster["hosts"]] == ["pve1", "pve2"]
    copied = Path(cluster["ssh"]["key_path"])
    assert copied.read_bytes() == sim_key.read_bytes()
    assert _owner_and_mode(copied) == (OWNER, 0o600)
