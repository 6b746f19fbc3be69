"""A stack of real processes for failure-path tests: own NATS, simulator, both workers, the gateway."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_runtime.config import dump_config_toml

from tests.support.nats import NatsServer, start_nats
from tests.support.procs import Proc
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, start_sim

FAST = {
    "PMCP_HEARTBEAT_INTERVAL": "0.2",
    "PMCP_API_TIMEOUT": "3",
    "PMCP_TASK_POLL_INTERVAL": "0.05",
    "PMCP_PROBE_INTERVAL": "0.5",
    "PMCP_PROBE_TIMEOUT": "1",
    "PMCP_COMMAND_GRACE": "2",
}


def sim_dict(sim: SimInfo) -> dict[str, Any]:
    return {f.name: getattr(sim, f.name) for f in dataclasses.fields(sim) if f.name not in ("proc", "raw")}


@dataclass
class FailureStack:
    workdir: Path
    nats: NatsServer
    sim: SimInfo
    config_path: Path
    gateway: GatewayProc
    workers: dict[str, Proc]

    def restart_worker(self, kind: str) -> Proc:
        old = self.workers.get(kind)
        if old is not None:
            old.stop()
        self.workers[kind] = start_worker(kind, self.nats.url, self.config_path, self.workdir,
                                          name=f"{kind}-{len(self.workers)}-{id(object())}", env=FAST)
        return self.workers[kind]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailureStack]:
    workdir = tmp_path_factory.mktemp("failures")
    nats = start_nats(workdir / "nats")
    sim = start_sim(workdir / "sim", task_duration=0.2)
    procs: list[Proc] = [nats.proc, sim.proc]
    try:
        config_path = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_dict(sim))))
        workers = {kind: start_worker(kind, nats.url, config_path, workdir, env=FAST)
                   for kind in ("ssh-worker", "api-worker")}
        procs += workers.values()
        gateway = start_gateway(nats.url, workdir, env=FAST)
        procs.append(gateway.proc)
        wait_ready(gateway)
        built = FailureStack(workdir=workdir, nats=nats, sim=sim, config_path=config_path, gateway=gateway,
                             workers=workers)
        yield built
        # Tests replace workers and restart NATS: stop what the stack holds now.
        procs += [*built.workers.values(), built.nats.proc]
    finally:
        for proc in reversed(procs):
            proc.stop()
