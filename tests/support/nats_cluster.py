"""A real 3-node NATS cluster with JetStream for tests and benches, with the faults a cluster must survive.

Two layouts, same controls:
- loopback: three nats-server processes on 127.0.0.1, each with its own random client, cluster-route and
  monitoring ports (no privileges needed);
- netns: each node in its own network namespace on a private bridge (tests.support.netns), on the standard
  ports of its own address, so one node can be cut off by a real partition.

Controls: kill(node) (SIGKILL), restart(node) (same ports, same JetStream store: it rejoins), partitioned(node)
(netns only: link down for the block, healed on exit). Readiness means every running node answers and agrees on
one JetStream meta leader; wait_current(node) waits until a node's /healthz says its JetStream is caught up.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx2

from tests.support.netns import Member, PrivateNetwork, create_network, require_netns
from tests.support.procs import Proc, find_binary, free_port, start_process, wait_until

Layout = Literal["loopback", "netns"]


@dataclass
class NatsNode:
    name: str
    host: str
    client_port: int
    cluster_port: int
    monitor_port: int
    store_dir: Path
    config_path: Path
    member: Member | None = None
    proc: Proc | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()


@dataclass
class NatsCluster:
    name: str
    workdir: Path
    nodes: list[NatsNode]
    network: PrivateNetwork | None = None
    _http: httpx2.Client = field(default_factory=lambda: httpx2.Client(timeout=1.0, trust_env=False))

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node, comma separated: the NATS_URL form the services accept."""
        return ",".join(self.urls)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    # --- faults ---------------------------------------------------------------------------

    def kill(self, node: NatsNode) -> None:
        """kill -9: no goodbye to clients or routes."""
        if node.proc is not None:
            node.proc.kill()

    def restart(self, node: NatsNode, timeout: float = 30.0) -> None:
        """Start a stopped node again on the same ports with the same JetStream store, and wait until it has
        rejoined (agrees on the meta leader). Use wait_current() to wait for its streams to catch up too."""
        if node.running:
            raise RuntimeError(f"{node.name} is still running")
        self._launch(node)
        self.wait_meta_leader(timeout)

    @contextlib.contextmanager
    def partitioned(self, node: NatsNode) -> Iterator[NatsNode]:
        """The node is cut off from the other nodes and from this process for the block (netns layout only)."""
        if self.network is None or node.member is None:
            raise RuntimeError("a partition needs the netns layout: start_nats_cluster(..., layout='netns')")
        with self.network.partitioned(node.member.name):
            yield node

    # --- observation ----------------------------------------------------------------------

    def monitor(self, node: NatsNode, path: str) -> dict[str, Any] | None:
        """A monitoring endpoint's JSON, or None when the node does not answer."""
        try:
            response = self._http.get(f"{node.monitor_url}{path}")
        except httpx2.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return response.json()

    def meta_leader(self, nodes: Sequence[NatsNode] | None = None) -> str | None:
        """The JetStream meta leader's server name when every given node (default: the running ones) answers
        and names the same one."""
        asked = [n for n in self.nodes if n.running] if nodes is None else list(nodes)
        leaders: set[str] = set()
        for node in asked:
            jsz = self.monitor(node, "/jsz")
            leader = ((jsz or {}).get("meta_cluster") or {}).get("leader")
            if not leader:
                return None
            leaders.add(leader)
        return leaders.pop() if len(leaders) == 1 else None

    def wait_meta_leader(self, timeout: float = 30.0, nodes: Sequence[NatsNode] | None = None,
                         other_than: str | None = None) -> str:
        """The meta leader the nodes agree on; other_than: wait until that node is no longer it (the nodes left
        with a lost one keep naming it until their route pings time out)."""
        found: list[str] = []

        def agreed() -> bool:
            leader = self.meta_leader(nodes)
            if leader and leader != other_than:
                found.append(leader)
                return True
            return False

        wait_until(agreed, timeout=timeout, what="the NATS nodes to agree on a JetStream meta leader",
                   interval=0.05)
        return found[-1]

    def is_current(self, node: NatsNode) -> bool:
        """/healthz: JetStream on this node sees the meta leader and every stream it holds is caught up."""
        try:
            return self._http.get(f"{node.monitor_url}/healthz").status_code == 200
        except httpx2.HTTPError:
            return False

    def wait_current(self, node: NatsNode, timeout: float = 30.0) -> None:
        wait_until(lambda: self.is_current(node), timeout=timeout, what=f"{node.name} to be current",
                   proc=node.proc, interval=0.05)

    def stream_state(self, node: NatsNode, stream: str) -> dict[str, Any] | None:
        """The stream's state as this node's own replica has it (messages, first/last sequence), and its
        cluster info (leader, replicas); None when the node does not hold the stream or does not answer."""
        jsz = self.monitor(node, "/jsz?accounts=true&streams=true")
        for account in (jsz or {}).get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return {**detail.get("state", {}), "cluster": detail.get("cluster", {})}
        return None

    def wait_caught_up(self, node: NatsNode, stream: str, within: float = 60.0) -> dict[str, Any]:
        """Until the node's replica of the stream holds what every other replica holds (same message count and
        last sequence, not empty); its state then."""
        states: dict[str, dict[str, Any]] = {}

        def same() -> bool:
            states.clear()
            states.update({n.name: self.stream_state(n, stream) or {} for n in self.nodes})
            mine = states[node.name]
            return bool(mine.get("messages")) and all(
                s.get("last_seq") == mine.get("last_seq") and s.get("messages") == mine.get("messages")
                for name, s in states.items() if name != node.name)

        try:
            wait_until(same, timeout=within, what=f"{node.name} to catch up on {stream}", interval=0.1)
        except TimeoutError:
            raise AssertionError(f"{node.name} did not catch up on {stream}: {states}") from None
        return states[node.name]

    def connection_holder(self, name_prefix: str) -> NatsNode | None:
        """The running node a client is connected to (the first whose connect name starts with name_prefix)."""
        for node in self.nodes:
            if not node.running:
                continue
            connz = self.monitor(node, "/connz?limit=1024") or {}
            if any(str(conn.get("name", "")).startswith(name_prefix) for conn in connz.get("connections") or []):
                return node
        return None

    # --- lifecycle ------------------------------------------------------------------------

    def _launch(self, node: NatsNode) -> None:
        binary = find_binary("nats-server")
        argv = [binary, "-c", str(node.config_path)]
        if node.member is not None:
            argv = node.member.exec_argv(argv)
        node.starts += 1
        node.proc = start_process(f"{self.name}-{node.name}-{node.starts}", argv, self.workdir)
        wait_until(lambda: self.monitor(node, "/healthz?js-enabled-only=true") is not None, timeout=15,
                   what=f"{node.name} to answer on its monitoring port", proc=node.proc, interval=0.02)

    def stop(self) -> None:
        """Stop every node and remove the namespaces. Safe after any failure, and twice."""
        for node in self.nodes:
            if node.proc is not None:
                node.proc.stop()
        self._http.close()
        if self.network is not None:
            self.network.close()


def _config(cluster: str, node: NatsNode, peers: Sequence[NatsNode]) -> str:
    routes = ", ".join(f'"nats-route://{peer.host}:{peer.cluster_port}"' for peer in peers)
    # Pings every 2 s, 3 missed: a node that stops answering (partition) loses its routes and clients in
    # seconds instead of the 2-minute default.
    settings: dict[str, Any] = {
        "server_name": node.name,
        "listen": f"{node.host}:{node.client_port}",
        "http": f"{node.host}:{node.monitor_port}",
        "ping_interval": "2s",
        "ping_max": 3,
        "jetstream": {"store_dir": str(node.store_dir), "max_memory_store": 64 * 1024 * 1024,
                      "max_file_store": 1024 * 1024 * 1024},
    }
    body = "\n".join(f"{key}: {json.dumps(value)}" for key, value in settings.items())
    return (f"{body}\ncluster {{\n  name: {json.dumps(cluster)}\n  listen: \"{node.host}:{node.cluster_port}\"\n"
            f"  routes: [{routes}]\n}}\n")


def start_nats_cluster(workdir: Path, *, layout: Layout = "loopback", size: int = 3, name: str = "pmcp",
                       timeout: float = 30.0) -> NatsCluster:
    """Start `size` nodes and wait for a JetStream meta leader. Stop it with cluster.stop() (or use
    nats_cluster(), which always does)."""
    if layout == "netns":
        require_netns()
    find_binary("nats-server")
    workdir.mkdir(parents=True, exist_ok=True)
    network = create_network() if layout == "netns" else None
    cluster = NatsCluster(name=name, workdir=workdir, nodes=[], network=network)
    try:
        for index in range(1, size + 1):
            node_name = f"n{index}"
            member = network.add_member(node_name) if network is not None else None
            node_dir = workdir / node_name
            node_dir.mkdir(exist_ok=True)
            # In namespaces each node has its own address, so the standard ports do.
            ports = (4222, 6222, 8222) if member is not None else (free_port(), free_port(), free_port())
            cluster.nodes.append(NatsNode(
                name=node_name, host=member.address if member else "127.0.0.1", client_port=ports[0],
                cluster_port=ports[1], monitor_port=ports[2], store_dir=node_dir / "js",
                config_path=node_dir / "nats.conf", member=member,
            ))
        for node in cluster.nodes:
            node.config_path.write_text(_config(name, node, [p for p in cluster.nodes if p is not node]))
        for node in cluster.nodes:
            cluster._launch(node)
        cluster.wait_meta_leader(timeout)
        for node in cluster.nodes:
            cluster.wait_current(node, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def nats_cluster(workdir: Path, *, layout: Layout = "loopback", size: int = 3) -> Iterator[NatsCluster]:
    cluster = start_nats_cluster(workdir, layout=layout, size=size)
    try:
        yield cluster
    finally:
        cluster.stop()

