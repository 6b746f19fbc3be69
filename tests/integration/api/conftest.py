"""One simulator, one spare simulator (to be stopped), nats (session) and one api-worker process serving a
cluster per way of trusting and authenticating, all pointed at the simulators."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, ProxmoxConfig
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from tests.integration.api.helpers import SimClient, start_api_worker
from tests.support.nats import NatsServer
from tests.support.procs import Proc
from tests.support.services import write_private
from tests.support.sim import SimInfo, start_sim

API_TIMEOUT = 5.0
WRONG_PIN = ":".join(["00"] * 32)


@dataclass
class ApiStack:
    sim: SimInfo
    spare: SimInfo
    """A second simulator that one test stops."""
    clusters: dict[str, str]
    """Role → cluster name: pinned, cafile, insecure, password, readonly, wrongpin, untrusted, spare, badtoken,
    badpassword."""
    config_path: Path
    workdir: Path
    worker: Proc
    nats_url: str

    def __getitem__(self, role: str) -> str:
        return self.clusters[role]


def _cluster(name: str, sim: SimInfo, **api: Any) -> ClusterConfig:
    token = sim.admin_token
    settings: dict[str, Any] = {"host": sim.host, "port": sim.api_port, "user": token["user"],
                                "token_name": token["token_id"], "token_value": SecretStr(token["secret"]),
                                "fingerprint": sim.fingerprint, "timeout": API_TIMEOUT}
    settings.update(api)
    return ClusterConfig(name=name, api=ApiSettings(**settings))


def write_config(path: Path, clusters: list[ClusterConfig]) -> Path:
    return write_private(path, dump_config_toml(ProxmoxConfig(clusters=clusters)))


@pytest.fixture(scope="session")
def api_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    sim = start_sim(tmp_path_factory.mktemp("api-sim"), task_duration=0.2)
    try:
        yield sim
    finally:
        sim.proc.stop()


@pytest.fixture(scope="session")
def spare_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    sim = start_sim(tmp_path_factory.mktemp("api-sim-spare"), nodes=1, guests=2, task_duration=0.2)
    try:
        yield sim
    finally:
        sim.proc.stop()


@pytest.fixture(scope="session")
def api_stack(api_sim: SimInfo, spare_sim: SimInfo, nats_server: NatsServer, thawed_control: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    workdir = tmp_path_factory.mktemp("api-worker")
    suffix = secrets.token_hex(3)
    roles = ["pinned", "cafile", "insecure", "password", "readonly", "wrongpin", "untrusted", "spare", "badtoken",
             "badpassword"]
    names = {role: f"api-{role}-{suffix}" for role in roles}
    readonly = api_sim.readonly_token
    clusters = [
        _cluster(names["pinned"], api_sim),
        _cluster(names["cafile"], api_sim, fingerprint=None, ca_file=Path(api_sim.cert_file)),
        _cluster(names["insecure"], api_sim, fingerprint=None, verify_ssl=False),
        _cluster(names["password"], api_sim, user="root@pam", token_name=None, token_value=None,
                 password=SecretStr(api_sim.root_password)),
        _cluster(names["readonly"], api_sim, user=readonly["user"], token_name=readonly["token_id"],
                 token_value=SecretStr(readonly["secret"])),
        _cluster(names["wrongpin"], api_sim, fingerprint=WRONG_PIN),
        _cluster(names["untrusted"], api_sim, fingerprint=None),
        _cluster(names["spare"], spare_sim),
        _cluster(names["badtoken"], api_sim, token_value=SecretStr(secrets.token_hex(16))),
        _cluster(names["badpassword"], api_sim, user="root@pam", token_name=None, token_value=None,
                 password=SecretStr(secrets.token_hex(16))),
    ]
    config_path = write_config(workdir / "clusters.toml", clusters)
    worker = start_api_worker(config_path, workdir, "api-worker", nats_server.url, PMCP_DRAIN_TIMEOUT="10")
    try:
        yield ApiStack(sim=api_sim, spare=spare_sim, clusters=names, config_path=config_path, workdir=workdir,
                       worker=worker, nats_url=nats_server.url)
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def sim_client(api_sim: SimInfo) -> Iterator[SimClient]:
    client = SimClient(api_sim)
    try:
        yield client
    finally:
        client.close()
