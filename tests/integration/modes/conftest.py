"""Two simulators (alpha: 3 nodes, beta: 2 nodes, different seeds) and ONE api-worker process serving both in all
three API modes (plus a few tunnel/pvesh variants for trust failures), and one ssh-worker serving a subset of the
same config (PMCP_SSH_CLUSTERS). Shared by every test of this folder."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from tests.integration.api.helpers import SimClient, start_api_worker
from tests.integration.modes.helpers import MODES, WRONG_HOST_KEY, WRONG_PIN, ModesStack, sim_cluster
from tests.support.nats import NatsServer
from tests.support.procs import start_process, wait_until
from tests.support.services import write_private
from tests.support.sim import SimInfo, start_sim

SSH_WORKER = str(Path(sys.executable).parent / "proxmox-mcp-ssh-worker")


@pytest.fixture(scope="session")
def alpha_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    sim = start_sim(tmp_path_factory.mktemp("modes-alpha"), seed=7, nodes=3, guests=8, task_duration=0.1)
    try:
        yield sim
    finally:
        sim.proc.stop()


@pytest.fixture(scope="session")
def beta_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    sim = start_sim(tmp_path_factory.mktemp("modes-beta"), seed=11, nodes=2, guests=6, task_duration=0.1)
    try:
        yield sim
    finally:
        sim.proc.stop()


@pytest.fixture(scope="session")
def modes_stack(alpha_sim: SimInfo, beta_sim: SimInfo, nats_server: NatsServer, thawed_control: None,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModesStack]:
    workdir = tmp_path_factory.mktemp("modes-workers")
    suffix = secrets.token_hex(3)
    names = {f"{sim_name}-{mode}": f"{sim_name}-{mode}-{suffix}" for sim_name in ("alpha", "beta") for mode in MODES}
    variants = ("alpha-tunnel-cafile", "alpha-tunnel-password", "alpha-tunnel-wrongpin", "alpha-tunnel-badhostkey",
                "alpha-pvesh-badhostkey", "alpha-excluded")
    names.update({role: f"{role}-{suffix}" for role in variants})
    sims = {"alpha": alpha_sim, "beta": beta_sim}
    clusters = [sim_cluster(names[f"{s}-{mode}"], sims[s], mode) for s in sims for mode in MODES]
    clusters += [
        sim_cluster(names["alpha-tunnel-cafile"], alpha_sim, "tunnel", fingerprint=None,
                    ca_file=Path(alpha_sim.cert_file)),
        sim_cluster(names["alpha-tunnel-password"], alpha_sim, "tunnel", user="root@pam", token_name=None,
                    token_value=None, password=SecretStr(alpha_sim.root_password)),
        sim_cluster(names["alpha-tunnel-wrongpin"], alpha_sim, "tunnel", fingerprint=WRONG_PIN),
        sim_cluster(names["alpha-tunnel-badhostkey"], alpha_sim, "tunnel",
                    ssh={"host_key_fingerprints": [WRONG_HOST_KEY], "known_hosts": workdir / "no_known_hosts"}),
        sim_cluster(names["alpha-pvesh-badhostkey"], alpha_sim, "pvesh",
                    ssh={"host_key_fingerprints": [WRONG_HOST_KEY], "known_hosts": workdir / "no_known_hosts"}),
        sim_cluster(names["alpha-excluded"], alpha_sim, "direct"),
    ]
    config_path = write_private(workdir / "clusters.toml", dump_config_toml(ProxmoxConfig(clusters=clusters)))
    served_api = ",".join(name for role, name in names.items() if role != "alpha-excluded")
    api_worker = start_api_worker(config_path, workdir, "modes-api-worker", nats_server.url,
                                  PMCP_API_CLUSTERS=served_api)
    try:
        ssh_worker = start_process("modes-ssh-worker", [SSH_WORKER], workdir, env={
            "NATS_URL": nats_server.url, "PMCP_CONFIG": str(config_path), "LOG_LEVEL": "INFO",
            "PMCP_SSH_CLUSTERS": f"{names['alpha-direct']},{names['beta-direct']}",
        })
        try:
            wait_until(lambda: '"worker ready"' in ssh_worker.log_text(), timeout=30, what="the ssh-worker",
                       proc=ssh_worker)
            yield ModesStack(alpha=alpha_sim, beta=beta_sim, names=names, nats_url=nats_server.url,
                             api_worker=api_worker, ssh_worker=ssh_worker, config_path=config_path)
        finally:
            ssh_worker.stop()
    finally:
        api_worker.stop()


@pytest.fixture(scope="session")
def alpha_client(alpha_sim: SimInfo) -> Iterator[SimClient]:
    """The simulator's own answers (admin token, pinned certificate), to compare with."""
    client = SimClient(alpha_sim)
    try:
        yield client
    finally:
        client.close()
