"""The freeze switch in the control bucket, on both backends: changes by compare-and-set (racing admins both get
theirs recorded, in order), one audit claim per change across gateways, the bucket source a guard reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from proxmox_mcp_contracts.control import FREEZE_KEY, RECENT_CHANGES
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.control import ControlTiming, FreezeGuard, change_freeze, read_freeze
from proxmox_mcp_runtime.control.sources import BucketFreezeSource
from proxmox_mcp_runtime.control.store import claim_unaudited
from proxmox_mcp_runtime.kv import KeyValueStore


async def test_a_bucket_never_frozen_reads_as_thawed(bucket: KeyValueStore) -> None:
    state, revision = await read_freeze(bucket)
    assert not state.frozen and state.seq == 0 and revision == 0


async def test_racing_changes_are_all_recorded_in_order_none_lost(bucket: KeyValueStore) -> None:
    changes = await asyncio.gather(*(change_freeze(bucket, frozen=i % 2 == 0, by=f"admin{i}", reason=f"r{i}",
                                                   via="rest") for i in range(6)))
    state, revision = await read_freeze(bucket)
    assert revision == max(r for _, r in changes)
    assert [c.seq for c in state.changes] == [6, 5, 4, 3, 2, 1]
    assert sorted(c.by for c in state.changes) == [f"admin{i}" for i in range(6)]


async def test_the_value_keeps_only_the_newest_changes(bucket: KeyValueStore) -> None:
    for i in range(RECENT_CHANGES + 3):
        await change_freeze(bucket, frozen=True, by="ops", reason=f"again {i}", via="cli")
    state, _ = await read_freeze(bucket)
    assert len(state.changes) == RECENT_CHANGES and state.seq == RECENT_CHANGES + 3


@pytest.mark.parametrize("reason", ["", "  ", "two\nlines", "tab\there", "x" * 501])
async def test_a_change_without_a_one_line_reason_is_refused_and_changes_nothing(bucket: KeyValueStore,
                                                                                 reason: str) -> None:
    with pytest.raises(ValueError):
        await change_freeze(bucket, frozen=True, by="ops", reason=reason, via="cli")
    assert await bucket.get(FREEZE_KEY) is None


async def test_each_change_is_claimed_for_the_audit_by_exactly_one_of_several_gateways(bucket: KeyValueStore) -> None:
    await change_freeze(bucket, frozen=True, by="a", reason="one", via="rest")
    state, _ = await change_freeze(bucket, frozen=False, by="b", reason="two", via="cli")
    claims = await asyncio.gather(*(claim_unaudited(bucket, state) for _ in range(4)))
    won = [claim for claim in claims if claim is not None]
    assert len(won) == 1 and [c.reason for c in won[0].changes] == ["one", "two"]
    assert await claim_unaudited(bucket, state) is None
    await won[0].release()  # the audit write failed: the next gateway claims both again
    again = await claim_unaudited(bucket, state)
    assert again is not None and [c.seq for c in again.changes] == [1, 2]


async def test_a_guard_on_the_bucket_sees_a_change_and_refuses_above_read_until_the_thaw(
    bucket: KeyValueStore,
) -> None:
    async def opened() -> KeyValueStore:
        return bucket

    guard = FreezeGuard(BucketFreezeSource(opened), ControlTiming(interval=0.05, stale_after=1.0, timeout=1.0))
    guard.start()
    try:
        await guard.check(Scope.ADMIN)
        await change_freeze(bucket, frozen=True, by="ops", reason="stop everything", via="cli",
                            now=datetime(2026, 1, 2, tzinfo=UTC))
        async with asyncio.timeout(5):
            while guard.status().frozen is not True:
                await asyncio.sleep(0.01)
        with pytest.raises(ServiceFailure) as caught:
            await guard.check(Scope.OPERATE)
        assert caught.value.code is ErrorCode.PERMISSION_DENIED and "stop everything" in caught.value.info.message
        await guard.check(Scope.READ)
        await change_freeze(bucket, frozen=False, by="ops", reason="fine again", via="cli")
        async with asyncio.timeout(5):
            while guard.status().frozen is not False:
                await asyncio.sleep(0.01)
        await guard.check(Scope.EXEC)
    finally:
        await guard.stop()


async def test_a_damaged_stored_state_is_unknown_to_a_guard_and_a_change_replaces_it(bucket: KeyValueStore) -> None:
    await bucket.put(FREEZE_KEY, b"{not json")

    async def opened() -> KeyValueStore:
        return bucket

    guard = FreezeGuard(BucketFreezeSource(opened), ControlTiming(interval=0.05, stale_after=1.0, timeout=1.0))
    with pytest.raises(ServiceFailure) as caught:
        await guard.check(Scope.OPERATE)
    assert "the stored freeze state is not valid" in caught.value.info.message
    state, _ = await change_freeze(bucket, frozen=False, by="ops", reason="repair", via="cli")
    assert state.seq == 1
    await guard.check(Scope.OPERATE)
