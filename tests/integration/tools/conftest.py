"""One stack for the tools tests (see helpers.ToolsStack), started once for the folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_runtime.config import dump_config_toml

from tests.integration.tools.helpers import ALPHA_TASK_SECONDS, BETA_TASK_SECONDS, FAST, ToolsStack
from tests.support.nats import start_nats
from tests.support.procs import Proc, wait_until
from tests.support.services import start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, start_sim


def _cluster(sim: SimInfo, name: str) -> ProxmoxConfig:
    raw = {"host": sim.host, "nodes": sim.nodes, "ssh_node_ports": sim.ssh_node_ports, "ssh_port": sim.ssh_port,
           "ssh_user": sim.ssh_user, "ssh_private_key": sim.ssh_private_key,
           "ssh_host_key_fingerprint": sim.ssh_host_key_fingerprint, "api_port": sim.api_port,
           "admin_token": sim.admin_token, "fingerprint": sim.fingerprint}
    config = config_for_sim(raw)
    return config.model_copy(update={"clusters": [config.clusters[0].model_copy(update={"name": name})]})


@pytest.fixture(scope="package")
def tools_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolsStack]:
    workdir = tmp_path_factory.mktemp("tools")
    procs: list[Proc] = []
    try:
        nats = start_nats(workdir / "nats")
        procs.append(nats.proc)
        alpha = start_sim(workdir / "alpha", seed=7, nodes=3, guests=8, task_duration=ALPHA_TASK_SECONDS)
        procs.append(alpha.proc)
        beta = start_sim(workdir / "beta", seed=11, nodes=2, guests=6, task_duration=BETA_TASK_SECONDS)
        procs.append(beta.proc)
        clusters = [*_cluster(alpha, "alpha").clusters, *_cluster(beta, "beta").clusters]
        config = ProxmoxConfig(clusters=clusters, default_cluster="alpha")
        config_path = write_private(workdir / "clusters.toml", dump_config_toml(config))
        workers = [start_worker(kind, nats.url, config_path, workdir, env=FAST)
                   for kind in ("ssh-worker", "api-worker")]
        procs.extend(workers)
        for worker in workers:
            wait_until(lambda w=worker: '"worker ready"' in w.log_text(), timeout=30, what="a worker", proc=worker)
        state = workdir / "gateway-state"
        state.mkdir()
        # The gateway learns the cluster names from the same config file the workers read (names only).
        gateway = start_gateway(nats.url, workdir, env={**FAST, "PMCP_STATE_DIR": str(state),
                                                        "PMCP_CONFIG": str(config_path)})
        procs.append(gateway.proc)
        wait_ready(gateway)
        yield ToolsStack(workdir=workdir, alpha=alpha, beta=beta, gateway=gateway, state_dir=state, workers=workers,
                         nats_url=nats.url, config_path=config_path)
    finally:
        for proc in reversed(procs):
            proc.stop()
