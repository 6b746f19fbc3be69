"""deploy/systemd/ha/nats-cluster.conf.example works as the README says: the same file on three hosts, each with
its own name and address, and one nats-secrets.conf (passwords, every host's route) shared by all three, form a
JetStream cluster that keeps R3 state and refuses clients without the password. Run here on loopback
(addresses mapped to free ports)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import api

from tests.support.nats_cluster import NatsCluster, NatsNode
from tests.support.procs import REPO_ROOT, free_port
from tests.support.shared_state import connected

HA = REPO_ROOT / "deploy" / "systemd" / "ha"
HOSTS = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
CLIENT_PASSWORD = "client-" + "7f3a" * 6
ROUTE_PASSWORD = "route-" + "9c1e" * 6


def _loopback(text: str, nodes: list[NatsNode]) -> str:
    for host, node in zip(HOSTS, nodes, strict=True):
        text = text.replace(f"{host}:4222", f"127.0.0.1:{node.client_port}")
        text = text.replace(f"{host}:6222", f"127.0.0.1:{node.cluster_port}")
    return text


def _config_for(index: int, nodes: list[NatsNode]) -> str:
    """Host `index`'s file, made as the README says from host 1's: its own name and its own address."""
    text = (HA / "nats-cluster.conf.example").read_text()
    text = text.replace("server_name: pmcp-1", f"server_name: {nodes[index].name}").replace(HOSTS[0], HOSTS[index])
    text = text.replace("127.0.0.1:8222", f"127.0.0.1:{nodes[index].monitor_port}")
    return _loopback(text, nodes).replace("/var/lib/proxmox-mcp/nats", str(nodes[index].store_dir))


def _secrets(nodes: list[NatsNode]) -> str:
    text = (HA / "nats-secrets.conf.example").read_text()
    text = text.replace("CHANGE-ME-client", CLIENT_PASSWORD).replace("CHANGE-ME-route", ROUTE_PASSWORD)
    return _loopback(text, nodes)


@pytest.fixture
def example_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = [NatsNode(name=f"pmcp-{n + 1}", host="127.0.0.1", client_port=free_port(), cluster_port=free_port(),
                      monitor_port=free_port(), store_dir=tmp_path / f"n{n}" / "js",
                      config_path=tmp_path / f"n{n}" / "nats-cluster.conf") for n in range(3)]
    cluster = NatsCluster(name="example", workdir=tmp_path, nodes=nodes)
    try:
        for index, node in enumerate(nodes):
            node.config_path.parent.mkdir(parents=True)
            node.config_path.write_text(_config_for(index, nodes))
            (node.config_path.parent / "nats-secrets.conf").write_text(_secrets(nodes))  # the same on every host
        for node in nodes:
            cluster._launch(node)  # the fixture starts configs it did not write
        cluster.wait_meta_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop()


def test_the_example_config_on_three_hosts_forms_a_jetstream_cluster_with_passwords(
    example_cluster: NatsCluster,
) -> None:
    for node in example_cluster.nodes:
        routez = example_cluster.monitor(node, "/routez") or {}
        assert routez.get("num_routes", 0) >= 2, routez  # each node routes to both others


async def test_clients_need_the_password_and_get_replicated_state(example_cluster: NatsCluster) -> None:
    urls = [f"nats://pmcp:{CLIENT_PASSWORD}@{n.host}:{n.client_port}" for n in example_cluster.nodes]
    async with connected(urls) as nc:
        kv = await nc.jetstream().create_key_value(api.KeyValueConfig(bucket="EXAMPLE", replicas=3))
        await kv.put("k", b"v")
        status = await kv.status()
        assert status.stream_info.config.num_replicas == 3
        assert status.stream_info.cluster is not None and len(status.stream_info.cluster.replicas or []) == 2
    anonymous = NatsClient()
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
        await anonymous.connect(servers=[re.sub(r"//[^@]+@", "//", urls[0])], connect_timeout=2,
                                allow_reconnect=False, max_reconnect_attempts=0)
    with contextlib.suppress(Exception):
        await anonymous.close()
