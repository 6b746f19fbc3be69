"""A gateway and workers given every node of a 3-node NATS cluster (NATS_URL as a comma list) move to another
node when theirs is killed, and calls go on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_runtime.config import dump_config_toml

from tests.integration.gateway.conftest import FAST, sim_dict
from tests.integration.gateway.test_failure_paths import _requests_seen, _wait_for_new_request
from tests.support.mcp_client import SimClient, http_client
from tests.support.nats_cluster import NatsCluster, nats_cluster
from tests.support.procs import Proc
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, sim_faults, start_sim

GATEWAY = "proxmox-mcp-gateway-"
API_WORKER = "proxmox-mcp-api-worker"


async def _until_ok(client: Any, tool: str, args: dict[str, Any], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await client.call_tool(tool, args)
        if not result.is_error:
            return result
        assert time.monotonic() < deadline, f"{tool} kept failing: {result.content}"
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def _stack_on(cluster: NatsCluster, workdir: Path) -> Iterator[tuple[SimInfo, GatewayProc]]:
    """Simulator, both workers and a gateway, all given every node of the cluster."""
    sim = start_sim(workdir / "sim", task_duration=0.2)
    procs: list[Proc] = [sim.proc]
    try:
        config = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_dict(sim))))
        procs += [start_worker(kind, cluster.url, config, workdir, env=FAST) for kind in ("ssh-worker", "api-worker")]
        gateway = start_gateway(cluster.url, workdir, env=FAST)
        procs.append(gateway.proc)
        wait_ready(gateway)
        yield sim, gateway
    finally:
        for proc in reversed(procs):
            proc.stop()


def _a_guest(sim: SimInfo) -> dict[str, Any]:
    with SimClient(sim_dict(sim)) as reader:
        return reader.guests()[0]


async def test_gateway_given_every_node_moves_to_another_when_its_node_is_killed_and_calls_go_on(
    tmp_path: Path,
) -> None:
    with nats_cluster(tmp_path / "nats") as cluster, _stack_on(cluster, tmp_path) as (sim, gateway):
        assert "," in cluster.url
        guest = _a_guest(sim)
        async with http_client(gateway.url, gateway.token) as client:
            await _until_ok(client, "list_vms", {}, within=10)
            holder = cluster.connection_holder(GATEWAY)
            assert holder is not None
            # A read is in flight on the gateway when its node dies.
            sim_faults(sim, [{"path": "/status/current$", "latency_ms": 1500}])
            before = await _requests_seen(holder.url, API_WORKER)
            in_flight = asyncio.create_task(
                client.call_tool("vm_status", {"vmid": guest["vmid"], "node": guest["node"]}))
            await _wait_for_new_request(holder.url, API_WORKER, before)
            cluster.kill(holder)
            killed = time.monotonic()
            result = await asyncio.wait_for(in_flight, timeout=20)
            if result.is_error:  # its reply may be lost with the node: then it says so, and may be retried
                error = result.structured_content
                assert error["code"] == "unavailable" and error["retryable"] is True, error
            sim_faults(sim, [])
            await _until_ok(client, "list_vms", {}, within=15)
            recovered = time.monotonic() - killed
            moved_to = cluster.connection_holder(GATEWAY)
            assert moved_to is not None and moved_to is not holder
            for _ in range(5):
                after = await client.call_tool("list_vms", {})
                assert not after.is_error, after.content
            wait_ready(gateway)
            print(f"calls work again {recovered:.2f}s after kill -9 of the gateway's NATS node; "
                  f"in-flight read: {'error' if result.is_error else 'ok'}")


async def test_a_read_in_flight_when_the_gateways_node_is_cut_off_blames_the_gateways_connection_and_calls_go_on(
    tmp_path: Path,
) -> None:
    with nats_cluster(tmp_path / "nats", layout="netns") as cluster, _stack_on(cluster, tmp_path) as (sim, gateway):
        guest = _a_guest(sim)
        async with http_client(gateway.url, gateway.token) as client:
            await _until_ok(client, "list_vms", {}, within=10)
            holder = cluster.connection_holder(GATEWAY)
            assert holder is not None
            sim_faults(sim, [{"path": "/status/current$", "latency_ms": 20000}])
            before = await _requests_seen(holder.url, API_WORKER)
            in_flight = asyncio.create_task(
                client.call_tool("vm_status", {"vmid": guest["vmid"], "node": guest["node"]}))
            await _wait_for_new_request(holder.url, API_WORKER, before)
            with cluster.partitioned(holder):
                cut = time.monotonic()
                # The socket stays open (no RST): only the missing echo tells the gateway its own link is gone,
                # so the worker, which may be alive and well on another node, is not blamed.
                result = await asyncio.wait_for(in_flight, timeout=20)
                noticed = time.monotonic() - cut
                error = result.structured_content
                assert result.is_error and error["code"] == "unavailable", result.content
                assert error["retryable"] is True, error
                assert "the gateway's connection to NATS failed during the call" in error["message"], error
                assert noticed < 10
                sim_faults(sim, [])
                # Pings go stale in seconds: the gateway (and a worker on that node) move to the other nodes.
                await _until_ok(client, "list_vms", {}, within=30)
                moved = time.monotonic() - cut
                moved_to = cluster.connection_holder(GATEWAY)
                assert moved_to is not None and moved_to is not holder
            print(f"cut-off link noticed by an in-flight read after {noticed:.2f}s; calls work again after "
                  f"{moved:.2f}s of partition")
