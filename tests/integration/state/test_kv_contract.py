"""Both key-value backends keep the same contract: compare-and-set, TTLs, watches with a complete snapshot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest
from proxmox_mcp_runtime.kv import BucketSpec, KeyExistsError, KeyValueStore, KvEntry, KvError, KvUnavailableError
from proxmox_mcp_runtime.kv.jetstream import JetStreamState
from proxmox_mcp_runtime.kv.local import LocalState

from tests.support.nats import start_nats
from tests.support.nats_cluster import nats_cluster
from tests.support.procs import wait_until_async


async def test_create_refuses_a_key_that_exists_and_exactly_one_of_two_racers_wins(bucket: KeyValueStore) -> None:
    await bucket.create("a", b"1")
    with pytest.raises(KeyExistsError):
        await bucket.create("a", b"2")
    outcomes = await asyncio.gather(bucket.create("race", b"x"), bucket.create("race", b"y"), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["KeyExistsError", "int"]
    entry = await bucket.get("a")
    assert entry is not None and entry.value == b"1"


async def test_update_needs_the_latest_revision(bucket: KeyValueStore) -> None:
    first = await bucket.create("k", b"v1")
    second = await bucket.update("k", b"v2", revision=first)
    assert second > first
    with pytest.raises(KeyExistsError):
        await bucket.update("k", b"v3", revision=first)
    entry = await bucket.get("k")
    assert entry == KvEntry("k", b"v2", second)


async def test_a_deleted_key_is_gone_and_can_be_created_again(bucket: KeyValueStore) -> None:
    await bucket.put("gone", b"1")
    await bucket.put("stays", b"2")
    await bucket.delete("gone")
    assert await bucket.get("gone") is None
    assert await bucket.keys() == ["stays"]
    await bucket.create("gone", b"3")
    entry = await bucket.get("gone")
    assert entry is not None and entry.value == b"3"


async def test_an_entry_with_a_ttl_disappears_after_it(bucket: KeyValueStore) -> None:
    await bucket.create("short", b"1", ttl=1.0)
    await bucket.create("long", b"2")
    assert await bucket.get("short") is not None
    deadline = time.monotonic() + 10
    while await bucket.get("short") is not None:
        assert time.monotonic() < deadline, "the entry outlived its ttl by far"
        await asyncio.sleep(0.1)
    await bucket.create("short", b"again")
    assert await bucket.get("long") is not None


async def test_an_update_with_a_ttl_renews_the_entrys_lifetime_and_it_ends_when_renewals_stop(
    bucket: KeyValueStore,
) -> None:
    revision = await bucket.create("slot", b"held", ttl=2)
    born = time.monotonic()
    while time.monotonic() - born < 3.5:  # past the first ttl, renewed every half second
        await asyncio.sleep(0.5)
        revision = await bucket.update("slot", b"held", revision=revision, ttl=2)
    entry = await bucket.get("slot")
    assert entry is not None and entry.revision == revision
    renewed = time.monotonic()
    while await bucket.get("slot") is not None:
        assert time.monotonic() - renewed < 10, "the entry outlived its last renewal by far"
        await asyncio.sleep(0.1)


async def test_a_ttl_must_be_whole_seconds_of_at_least_one(bucket: KeyValueStore) -> None:
    for ttl in (0.5, 1.5, 0):
        with pytest.raises(KvError, match="whole number of seconds"):
            await bucket.create(f"t{int(ttl * 10)}", b"x", ttl=ttl)
    revision = await bucket.create("t", b"x")
    with pytest.raises(KvError, match="whole number of seconds"):
        await bucket.update("t", b"y", revision=revision, ttl=0.25)


async def test_a_watch_delivers_the_snapshot_before_it_returns_then_every_change(bucket: KeyValueStore) -> None:
    await bucket.put("one", b"1")
    await bucket.put("two", b"2")
    await bucket.delete("two")
    seen: list[KvEntry] = []
    watch = await bucket.watch(seen.append)
    try:
        assert [(e.key, e.value) for e in seen] == [("one", b"1")]
        await bucket.put("three", b"3")
        await bucket.delete("one")
        await wait_until_async(lambda: len(seen) >= 3, timeout=10, what="the watch to deliver both changes")
        assert [(e.key, e.value) for e in seen[1:]] == [("three", b"3"), ("one", None)]
    finally:
        await watch.stop()


async def test_a_local_watch_sees_what_another_process_wrote_to_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    gateway, cli = LocalState(path, poll_interval=0.05), LocalState(path)
    spec = BucketSpec(name="tokens")
    seen: list[KvEntry] = []
    watch = await (await gateway.bucket(spec)).watch(seen.append)
    try:
        await (await cli.bucket(spec)).put("t1", b"revoked")
        await wait_until_async(lambda: any(e.key == "t1" and e.value == b"revoked" for e in seen), timeout=10,
                               what="the other process's write")
    finally:
        await watch.stop()
        await gateway.close()
        await cli.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_jetstream_without_a_server_is_unavailable_not_a_hang(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "nats")
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        bucket = await JetStreamState(nc, timeout=0.5).bucket(BucketSpec(name="lonely"))
        await bucket.put("k", b"v")
        server.proc.stop()
        started = time.monotonic()
        with pytest.raises(KvUnavailableError):
            await bucket.get("k")
        assert time.monotonic() - started < 10
    finally:
        await nc.close()
        server.proc.stop()


async def test_jetstream_with_patience_writes_through_a_stream_leader_election(tmp_path: Path) -> None:
    with nats_cluster(tmp_path / "nats") as cluster:
        nc = await nats.connect(servers=cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        try:
            spec = BucketSpec(name="elected")
            patient = await JetStreamState(nc, replicas=3, patience=30).bucket(spec)
            hasty = await JetStreamState(nc, replicas=3).bucket(spec)
            await patient.put("before", b"1")
            info = await nc.jetstream().stream_info(f"KV_{spec.name}")
            assert info.cluster is not None and info.cluster.leader
            leader = cluster.node(info.cluster.leader)
            cluster.kill(leader)
            # Without patience the first write finds no leader (or no answer) and fails at once.
            with pytest.raises(KvUnavailableError):
                await hasty.create("hasty", b"x")
            started = time.monotonic()
            revision = await patient.create("patient", b"2")
            waited = time.monotonic() - started
            entry = await patient.get("patient")
            assert entry == KvEntry("patient", b"2", revision)
            assert (await patient.get("before")) is not None
        finally:
            await nc.close()
    print(f"a create waited {waited:.1f} s for the bucket's new stream leader")
