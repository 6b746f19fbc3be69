"""The kill switch with several gateways (PMCP_STATE=jetstream) on a real 3-node NATS cluster: the switch is a key
in the R3 PMCP_CONTROL bucket that both gateways and both workers watch and confirm with leader reads. Done when
(issue 15, 5): a freeze on one gateway refuses a call above read on the other within 1 s, also sent straight to
a worker's subject; reads work; without a JetStream quorum the workers refuse everything above read and the
gateways, which can store no audit record, refuse every call; thaw restores; all audited."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from mcp import Client
from nats.aio.client import Client as NatsClient
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_runtime.config import dump_config_toml

from tests.integration.freeze.helpers import (
    admin_call,
    audit_records,
    direct_mutations,
    direct_reads,
    error_of,
    freeze_cli,
    health_freeze,
    is_frozen_refusal,
    is_unknown_refusal,
    reading_calls,
    until,
    vm_action_refused,
)
from tests.integration.gateway.conftest import FAST, sim_dict
from tests.support.control import direct
from tests.support.mcp_client import SimClient, http_client
from tests.support.nats_cluster import NatsCluster, start_nats_cluster
from tests.support.procs import Proc
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import start_sim

JETSTREAM = {**FAST, "PMCP_STATE": "jetstream", "PMCP_STATE_REPLICAS": "3"}


@dataclass
class ClusterStack:
    cluster: NatsCluster
    first: GatewayProc
    second: GatewayProc
    state_dirs: tuple[Path, Path]
    vm: dict[str, Any]

    @property
    def cli_env(self) -> dict[str, str]:
        return {"PMCP_STATE": "jetstream", "PMCP_STATE_REPLICAS": "3", "NATS_URL": self.cluster.url}

    def audit(self, event: str) -> list[dict[str, Any]]:
        return audit_records(*self.state_dirs, event=event)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    workdir = tmp_path_factory.mktemp("freeze-cluster")
    cluster = start_nats_cluster(workdir / "nats")
    procs: list[Proc] = []
    try:
        sim = start_sim(workdir / "sim", task_duration=0.2)
        procs.append(sim.proc)
        config = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_dict(sim))))
        procs += [start_worker(kind, cluster.url, config, workdir, env=JETSTREAM)
                  for kind in ("ssh-worker", "api-worker")]
        gateways: list[GatewayProc] = []
        state_dirs: list[Path] = []
        for name in ("first", "second"):
            state_dirs.append(workdir / f"{name}-state")
            gateways.append(start_gateway(cluster.url, workdir,
                                          env={**JETSTREAM, "PMCP_STATE_DIR": str(state_dirs[-1])}))
            procs.append(gateways[-1].proc)
        for gateway in gateways:
            wait_ready(gateway)
        with SimClient(sim_dict(sim)) as reader:
            vm = next(g for g in reader.guests() if g["type"] == "qemu" and g["status"] == "running")
        yield ClusterStack(cluster=cluster, first=gateways[0], second=gateways[1],
                           state_dirs=(state_dirs[0], state_dirs[1]), vm=vm)
    finally:
        for proc in reversed(procs):
            proc.stop()
        cluster.stop()


@pytest.fixture
def thawed(stack: ClusterStack) -> ClusterStack:
    thaw = admin_call(stack.first, "thaw", "test starts thawed")
    assert thaw.status_code == 200, thaw.text
    return stack


@pytest.fixture
async def nc(stack: ClusterStack) -> AsyncIterator[NatsClient]:
    connection = await nats.connect(servers=stack.cluster.urls)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_freeze_on_one_gateway_refuses_calls_above_read_on_the_other_within_a_second(
    thawed: ClusterStack, nc: NatsClient
) -> None:
    stack = thawed
    async with http_client(stack.second.url, stack.second.token) as second:
        await until(lambda: _works(second, stack.vm), within=15, what="vm_action working on the second gateway")
        frozen = admin_call(stack.first, "freeze", "ransomware suspected")
        assert frozen.status_code == 200, frozen.text
        took = await until(lambda: _refused(second, stack.vm), within=1.0,
                           what="the second gateway refusing vm_action")
        seen = health_freeze(stack.second)
        assert seen["state"] == "frozen" and seen["by"] == "static" and seen["reason"] == "ransomware suspected"
        assert seen["via"] == "rest" and seen["backend"] == "jetstream"
        for kind, op, args in direct_mutations(stack.vm):
            answer = await direct(nc, kind, op, args)
            assert isinstance(answer, ErrorInfo) and is_frozen_refusal(answer), (op, answer)
        for kind, op, args in direct_reads(stack.vm):
            assert isinstance(await direct(nc, kind, op, args), dict), op
        for tool, args in reading_calls(stack.vm):
            result = await second.call_tool(tool, args)
            assert not result.is_error, (tool, result.content)
        records = [r for r in stack.audit("freeze") if r["reason"] == "ransomware suspected"]
        assert len(records) == 1, records  # one record for the change, though both gateways saw it
        assert records[0]["token_id"] == "static" and records[0]["transport"] == "rest"
        refused = [r for r in audit_records(stack.state_dirs[1]) if r.get("tool") == "vm_action"
                   and r.get("result") == "permission_denied"]
        assert refused, "the second gateway did not audit the call it refused"
    print(f"jetstream R3: the second gateway refused vm_action {took * 1000:.0f} ms after the first one's freeze reply")


async def test_a_thaw_from_the_cli_restores_calls_above_read_on_every_gateway_and_is_audited_once(
    thawed: ClusterStack
) -> None:
    stack = thawed
    assert admin_call(stack.second, "freeze", "change freeze for the release").status_code == 200
    async with http_client(stack.first.url, stack.first.token) as first:
        await until(lambda: _refused(first, stack.vm), within=1.0, what="the first gateway refusing vm_action")
        done = freeze_cli("thaw", "release shipped", stack.cli_env)
        assert done.returncode == 0, done.stderr
        assert "recorded in the audit by a gateway" in done.stdout, (done.stdout, done.stderr)
        took = await until(lambda: _works(first, stack.vm), within=1.0, what="vm_action working after the thaw")
    thaws = [r for r in stack.audit("thaw") if r["reason"] == "release shipped"]
    assert len(thaws) == 1 and thaws[0]["by"].startswith("cli:") and thaws[0]["via"] == "cli", thaws
    assert health_freeze(stack.second)["state"] == "thawed"
    print(f"jetstream R3: vm_action worked on the first gateway {took * 1000:.0f} ms after the CLI thaw returned")


async def test_without_a_jetstream_quorum_gateways_refuse_every_call_and_workers_refuse_calls_above_read(
    thawed: ClusterStack
) -> None:
    """Audit before reply: a gateway that can store no audit record performs nothing, reads included. The
    workers keep no audit, so they show the freeze's own rule: reads answered, everything above read refused."""
    stack = thawed
    survivor, *lost = stack.cluster.nodes
    async with http_client(stack.second.url, stack.second.token) as second:
        await until(lambda: _works(second, stack.vm), within=15, what="vm_action working before the loss")
        for node in lost:
            stack.cluster.kill(node)
        killed = time.monotonic()
        await until(lambda: _audit_unavailable(second, stack.vm), within=30,
                    what="the gateway refusing reads for want of the audit stream")
        took = time.monotonic() - killed
        refused = error_of(await second.call_tool(
            "vm_action", {"vmid": stack.vm["vmid"], "node": stack.vm["node"], "action": "start"}))
        assert refused is not None and refused["code"] == "unavailable" and refused["retryable"], refused
        seen = health_freeze(stack.second)
        assert seen["state"] == "unknown" and seen["problem"], seen
        connection = await nats.connect(servers=[survivor.url])
        try:
            vm_action = direct_mutations(stack.vm)[0]
            await until(lambda: _direct_unknown(connection, *vm_action), within=15,
                        what="the api-worker refusing vm_action for want of the freeze switch")
            assert isinstance(await direct(connection, *direct_reads(stack.vm)[0]), dict)
        finally:
            await connection.close()
        for node in lost:
            stack.cluster.restart(node)
        healed = await until(lambda: _works(second, stack.vm), within=60, what="vm_action working after the heal")
        for tool, args in reading_calls(stack.vm):
            result = await second.call_tool(tool, args)
            assert not result.is_error, (tool, result.content)
    print(f"jetstream R3, 2 of 3 nodes killed: every call refused {took:.2f} s after the kill; "
          f"vm_action allowed again {healed:.2f} s after the nodes were back")


async def _works(client: Client, vm: dict[str, Any]) -> bool:
    return await vm_action_refused(client, vm) is None


async def _refused(client: Client, vm: dict[str, Any]) -> bool:
    return is_frozen_refusal(await vm_action_refused(client, vm))


async def _audit_unavailable(client: Client, vm: dict[str, Any]) -> bool:
    error = error_of(await client.call_tool("vm_status", {"vmid": vm["vmid"], "node": vm["node"]}))
    return (error is not None and error["code"] == "unavailable"
            and "audit record could not be stored" in error["message"])


async def _direct_unknown(nc: NatsClient, kind: Any, op: Any, args: dict[str, Any]) -> bool:
    answer = await direct(nc, kind, op, args)
    return isinstance(answer, ErrorInfo) and is_unknown_refusal(answer)
