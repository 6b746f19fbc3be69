"""The 3-node NATS cluster fixture itself: JetStream R3 survives kill -9 and a real partition of one node."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import Header, StorageType

from tests.support.nats_cluster import NatsCluster, NatsNode, nats_cluster

STREAM = "FIXTURE"


async def _connect(urls: list[str]) -> NatsClient:
    return await nats.connect(servers=urls, connect_timeout=2, reconnect_time_wait=0.2, max_reconnect_attempts=-1,
                              ping_interval=2, max_outstanding_pings=2)


async def _close(nc: NatsClient) -> None:
    # nats-py's close() raises ConnectionResetError when the socket it flushes died under it (a cut-off node).
    with contextlib.suppress(ConnectionError):
        await nc.close()


async def _publish_acked(js: JetStreamContext, subject: str, payload: bytes, *, within: float) -> int:
    """Publish until a quorum acknowledges (an election may be under way); the message id makes a retry of a
    publish that was stored after all a duplicate the stream drops, so counts stay exact."""
    deadline = time.monotonic() + within
    while True:
        try:
            ack = await js.publish(subject, payload, timeout=1.0, headers={Header.MSG_ID: payload.decode()})
            return ack.seq
        except (nats.errors.TimeoutError, nats.js.errors.Error, nats.errors.NoRespondersError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no quorum acknowledged {payload!r} within {within}s: {exc!r}") from None
            await asyncio.sleep(0.1)


async def _read(js: JetStreamContext, seq: int, *, within: float) -> bytes:
    deadline = time.monotonic() + within
    while True:
        try:
            return (await js.get_msg(STREAM, seq)).data or b""
        except (nats.errors.TimeoutError, nats.js.errors.Error, nats.errors.NoRespondersError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _stream_leader(js: JetStreamContext) -> str:
    info = await js.stream_info(STREAM)
    assert info.cluster is not None and info.cluster.leader, info
    return info.cluster.leader


async def _wait_replica_has(cluster: NatsCluster, node: NatsNode, messages: int, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        state = cluster.stream_state(node, STREAM) or {}
        if state.get("messages") == messages:
            return
        assert time.monotonic() < deadline, f"{node.name}'s replica has {state.get('messages')}, not {messages}"
        await asyncio.sleep(0.05)


async def _add_r3_stream(js: JetStreamContext) -> None:
    await js.add_stream(name=STREAM, subjects=["fixture.>"], num_replicas=3, storage=StorageType.FILE)


async def test_loopback_cluster_keeps_an_r3_stream_through_kill_9_and_the_restarted_node_catches_up(
    tmp_path: Path,
) -> None:
    with nats_cluster(tmp_path, layout="loopback") as cluster:
        assert all(node.host == "127.0.0.1" for node in cluster.nodes)
        assert len({port for node in cluster.nodes
                     for port in (node.client_port, node.cluster_port, node.monitor_port)}) == 9
        nc = await _connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=2)
            await _add_r3_stream(js)
            assert await _publish_acked(js, "fixture.a", b"m1", within=10) == 1
            victim = cluster.node(await _stream_leader(js))
            cluster.kill(victim)
            assert not victim.running
            # The two others elect a new stream leader and go on taking writes and reads.
            started = time.monotonic()
            assert await _publish_acked(js, "fixture.a", b"m2", within=30) == 2
            failover = time.monotonic() - started
            assert await _read(js, 1, within=10) == b"m1"
            assert await _read(js, 2, within=10) == b"m2"
            assert await _stream_leader(js) != victim.name
            cluster.restart(victim)
            cluster.wait_current(victim)
            await _wait_replica_has(cluster, victim, 2, within=20)
            print(f"stream leader failover after kill -9: {failover:.2f}s")
        finally:
            await _close(nc)
    assert not any(node.running for node in cluster.nodes)


async def test_partitioned_node_leaves_a_quorum_of_two_and_catches_up_after_healing(tmp_path: Path) -> None:
    with nats_cluster(tmp_path, layout="netns") as cluster:
        assert cluster.network is not None
        assert len({node.host for node in cluster.nodes}) == 3
        nc = await _connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=2)
            await _add_r3_stream(js)
            assert await _publish_acked(js, "fixture.a", b"before", within=10) == 1
            victim = cluster.node(await _stream_leader(js))
            others = [node for node in cluster.nodes if node is not victim]
            # A second client on the two others only: the first may have been connected to the victim.
            quorum_side = await _connect([node.url for node in others])
            try:
                qjs = quorum_side.jetstream(timeout=2)
                started = time.monotonic()
                with cluster.partitioned(victim):
                    assert cluster.monitor(victim, "/healthz") is None  # really unreachable from here
                    seqs = [await _publish_acked(qjs, "fixture.a", f"during-{i}".encode(), within=30)
                            for i in range(3)]
                    assert seqs == [2, 3, 4]
                    assert await _read(qjs, 3, within=10) == b"during-1"
                    assert cluster.wait_meta_leader(timeout=30, nodes=others, other_than=victim.name) != victim.name
                    assert await _stream_leader(qjs) != victim.name
                    assert cluster.stream_state(victim, STREAM) is None  # still cut off
                partition = time.monotonic() - started
                assert partition < 60
                cluster.wait_current(victim)
                await _wait_replica_has(cluster, victim, 4, within=30)
                assert (cluster.stream_state(victim, STREAM) or {}).get("last_seq") == 4
                print(f"partition held {partition:.2f}s")
            finally:
                await _close(quorum_side)
        finally:
            await _close(nc)
    assert not any(node.running for node in cluster.nodes)
    assert cluster.network.members == {}
