"""The readonly profile's host-health commands through the real ssh-worker against the simulator's SSH face: the
read-only forms run on the node and answer from the simulated cluster, the state-changing and secret-printing
forms are refused by the worker's policy."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import SshOp
from proxmox_mcp_runtime.config import dump_config_toml

from tests.integration.modes.helpers import error_of, result_of, ssh_call
from tests.support.nats import NatsServer
from tests.support.procs import start_process, wait_until
from tests.support.services import write_private
from tests.support.sim import SimInfo, start_sim

WORKER = str(Path(sys.executable).parent / "proxmox-mcp-ssh-worker")
READONLY = Caller(token_id="health-exec", scope=Scope.EXEC, command_profile="readonly")


@dataclass
class HealthStack:
    sim: SimInfo
    cluster: str


@pytest.fixture(scope="module")
def stack(nats_server: NatsServer, thawed_control: None,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[HealthStack]:
    workdir = tmp_path_factory.mktemp("host-health")
    sim = start_sim(workdir / "sim", nodes=3, guests=2)
    try:
        config = config_for_sim(sim.raw)
        name = f"health-{secrets.token_hex(3)}"  # the session's NATS is shared: no other worker serves this name
        config = config.model_copy(update={"clusters": [config.clusters[0].model_copy(update={"name": name})]})
        config_path = write_private(workdir / "clusters.toml", dump_config_toml(config))
        worker = start_process("health-ssh-worker", [WORKER], workdir, env={
            "NATS_URL": nats_server.url, "PMCP_CONFIG": str(config_path), "LOG_LEVEL": "INFO",
        })
        try:
            wait_until(lambda: '"worker ready"' in worker.log_text(), timeout=30, what="the ssh-worker", proc=worker)
            yield HealthStack(sim=sim, cluster=name)
        finally:
            worker.stop()
    finally:
        sim.proc.stop()


async def run_ok(nc: NatsClient, cluster: str, command: str, node: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"command": command, **({"node": node} if node else {})}
    result = result_of(await ssh_call(nc, cluster, SshOp.EXEC, args, caller=READONLY))
    assert result["exit_code"] == 0, result
    return result


async def test_quorum_sampling_and_time_status_run_on_the_node(stack: HealthStack, nc: NatsClient) -> None:
    node = stack.sim.nodes[1]
    quorum = await run_ok(nc, stack.cluster, "corosync-quorumtool -s", node)
    assert "Quorate:          Yes" in quorum["stdout"]
    assert f"Nodes:            {len(stack.sim.nodes)}" in quorum["stdout"]
    assert any(line.endswith(f"{node} (local)") for line in quorum["stdout"].splitlines())
    members = await run_ok(nc, stack.cluster, "corosync-quorumtool -l -o n")
    assert [line.split()[2] for line in members["stdout"].splitlines()[4:]] == stack.sim.nodes

    started = time.monotonic()
    samples = await run_ok(nc, stack.cluster, "vmstat 1 2")
    assert time.monotonic() - started >= 0.9  # the second sample comes a real second after the first
    lines = samples["stdout"].splitlines()
    assert len(lines) == 4 and lines[1].split()[-5:] == ["us", "sy", "id", "wa", "st"]

    clock = await run_ok(nc, stack.cluster, "timedatectl status")
    assert "System clock synchronized: yes" in clock["stdout"]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("corosync-quorumtool -e 1", "-e is not allowed"),
        ("vmstat 1", "an interval needs a count"),
        ("timedatectl set-time 12:00", "'set-time' is not allowed"),
        ("lastb", "lastb prints failed-login records"),
        ("ceph auth get client.admin", "ceph auth prints and changes Ceph keys"),
        ("smartctl -t long /dev/sda", "-t is not allowed"),
    ],
)
async def test_state_changing_and_secret_printing_forms_are_refused_by_the_worker(
    stack: HealthStack, nc: NatsClient, command: str, reason: str
) -> None:
    error = error_of(await ssh_call(nc, stack.cluster, SshOp.EXEC, {"command": command}, caller=READONLY))
    assert error.code is ErrorCode.POLICY_DENIED
    assert error.message.startswith("command refused by policy: ") and reason in error.message, error.message
