"""Concurrency slots on a shared store whose answers get lost (NATS cut off, a leader election): a slot is never
left to block its token until its TTL runs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from proxmox_mcp_contracts.errors import ServiceFailure
from proxmox_mcp_gateway.shared_limits import KvSlots
from proxmox_mcp_gateway.state_names import SLOTS
from proxmox_mcp_runtime.kv import KeyValueStore, KvUnavailableError
from proxmox_mcp_runtime.kv.local import LocalState

TTL = 30  # long: a slot freed within the tests' few seconds was freed by the gateway, not by its TTL


class LossyBucket:
    """The real local bucket, but the next `lose_deletes` deletes fail, and the next `lose_created` creates are
    applied and then answered as if the store had not answered."""

    def __init__(self, bucket: KeyValueStore) -> None:
        self._bucket = bucket
        self.lose_deletes = 0
        self.lose_created = 0

    async def delete(self, key: str) -> None:
        if self.lose_deletes:
            self.lose_deletes -= 1
            raise KvUnavailableError("no answer (test)")
        await self._bucket.delete(key)

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        revision = await self._bucket.create(key, value, ttl=ttl)
        if self.lose_created:
            self.lose_created -= 1
            raise KvUnavailableError("no answer (test)")
        return revision

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bucket, name)


@pytest.fixture
async def bucket(tmp_path: Path) -> AsyncIterator[LossyBucket]:
    state = LocalState(tmp_path / "state.db")
    yield LossyBucket(await state.bucket(SLOTS))
    await state.close()


@pytest.fixture
async def slots(bucket: LossyBucket) -> AsyncIterator[KvSlots]:
    async def opened() -> KeyValueStore:
        return cast(KeyValueStore, bucket)

    held = KvSlots(opened, owner="gateway-a", ttl=TTL, timeout=5.0)
    yield held
    await held.close()


async def until_acquired(slots: KvSlots, cap: int, within: float = 10.0) -> None:
    """Poll until `cap` calls at once get a slot each (ServiceFailure: the token still looks busy)."""
    async with asyncio.timeout(within):
        while True:
            try:
                async with HoldAll(slots, cap):
                    return
            except ServiceFailure:
                await asyncio.sleep(0.1)


class HoldAll:
    """Hold `cap` slots of one token at once."""

    def __init__(self, slots: KvSlots, cap: int) -> None:
        self._holds = [slots.hold("tok", cap) for _ in range(cap)]

    async def __aenter__(self) -> None:
        entered: list[Any] = []
        try:
            for hold in self._holds:
                await hold.__aenter__()
                entered.append(hold)
        except BaseException:
            for hold in reversed(entered):
                await hold.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *_: object) -> None:
        for hold in reversed(self._holds):
            await hold.__aexit__(None, None, None)


async def test_a_slot_whose_release_got_no_answer_is_freed_once_the_store_answers(
    slots: KvSlots, bucket: LossyBucket
) -> None:
    bucket.lose_deletes = 1
    async with slots.hold("tok", 1):
        pass
    with pytest.raises(ServiceFailure, match="already has 1 calls running"):
        async with slots.hold("tok", 1):
            pass
    await until_acquired(slots, 1)


async def test_a_slot_created_without_an_answer_is_removed_and_the_cap_is_whole_again(
    slots: KvSlots, bucket: LossyBucket
) -> None:
    bucket.lose_created = 1
    async with slots.hold("tok", 2):  # its first create was applied unanswered: it took the other slot
        with pytest.raises(ServiceFailure, match="already has 2 calls running"):
            async with slots.hold("tok", 2):
                pass
    await until_acquired(slots, 2)
