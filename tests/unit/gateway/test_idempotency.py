"""The idempotency ledger on the local state file: one claim per key and principal, duplicates wait for the first
and get its record, another operation under the key is a conflict, expired and released keys are free again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
from proxmox_mcp_gateway.catalog import TOOLS, ToolSpec
from proxmox_mcp_gateway.idempotency import Claim, IdempotencyLedger, KeyRecord, Phase, fingerprint, store_key
from proxmox_mcp_runtime.kv import BucketSpec, KeyValueStore
from proxmox_mcp_runtime.kv.local import LocalState

from tests.support.clock import ManualClock

OPERATION = {"vmid": 100, "action": "stop"}


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[LocalState]:
    backend = LocalState(tmp_path / "state.db")
    yield backend
    await backend.close()


def ledger(state: LocalState, clock: ManualClock | None = None, wait: float = 5.0) -> IdempotencyLedger:
    async def open_bucket(spec: BucketSpec) -> KeyValueStore:
        return await state.bucket(spec)

    return IdempotencyLedger(open_bucket, retention=60, wait=wait, poll_interval=0.01, clock=clock or ManualClock())


async def claim(book: IdempotencyLedger, principal: str = "tok", key: str = "k1",
                operation: dict[str, object] | None = None) -> Claim | KeyRecord:
    return await book.claim(principal, key, tool="vm_action", cluster="default", operation=operation or OPERATION)


async def test_a_duplicate_waits_for_the_first_call_and_gets_its_record(state: LocalState) -> None:
    book = ledger(state)
    first = await claim(book)
    assert isinstance(first, Claim)
    waiting = asyncio.create_task(claim(book))
    finished, _ = await asyncio.wait({waiting}, timeout=0.1)
    assert not finished, "a duplicate waits while the first call is pending"
    await book.started(first, upid="UPID:x", started={"upid": "UPID:x"})
    replay = await asyncio.wait_for(waiting, timeout=5)
    assert isinstance(replay, KeyRecord) and replay.phase is Phase.STARTED and replay.upid == "UPID:x"
    await book.finished(first, result={"upid": "UPID:x", "done": True})
    done = await claim(book)
    assert isinstance(done, KeyRecord) and done.phase is Phase.DONE and done.result == {"upid": "UPID:x", "done": True}


async def test_two_claims_at_once_give_one_claim(state: LocalState) -> None:
    book = ledger(state, wait=0.3)
    outcomes = await asyncio.gather(claim(book), claim(book), return_exceptions=True)
    claims = [o for o in outcomes if isinstance(o, Claim)]
    assert len(claims) == 1
    [other] = [o for o in outcomes if not isinstance(o, Claim)]
    assert isinstance(other, ServiceFailure) and other.code is ErrorCode.CONFLICT and other.info.retryable


async def test_another_operation_under_the_key_is_a_conflict_but_another_principal_is_another_key(
    state: LocalState,
) -> None:
    book = ledger(state)
    first = await claim(book)
    assert isinstance(first, Claim)
    await book.finished(first, error=ErrorInfo(code=ErrorCode.UPSTREAM_ERROR, message="locked"))
    with pytest.raises(ServiceFailure) as conflict:
        await claim(book, operation={"vmid": 101, "action": "stop"})
    assert conflict.value.code is ErrorCode.CONFLICT and "another call" in conflict.value.info.message
    assert isinstance(await claim(book, principal="someone-else"), Claim)
    replay = await claim(book)
    assert isinstance(replay, KeyRecord) and replay.error is not None and replay.error.message == "locked"


async def test_expired_and_released_keys_are_free_again(state: LocalState) -> None:
    clock = ManualClock()
    book = ledger(state, clock)
    first = await claim(book)
    assert isinstance(first, Claim)
    await book.finished(first, result={"x": 1})
    clock.now += 61
    assert isinstance(await claim(book), Claim)
    released = await claim(book, key="k2")
    assert isinstance(released, Claim)
    await book.release(released)
    assert isinstance(await claim(book, key="k2"), Claim)


async def test_the_store_holds_digests_not_the_keys(state: LocalState) -> None:
    book = ledger(state)
    await claim(book, key="my-secret-key")
    bucket = await state.bucket(BucketSpec(name="PMCP_IDEMPOTENCY"))
    assert await bucket.keys() == [store_key("tok", "my-secret-key")]
    assert store_key("tok", "my-secret-key") != store_key("other", "my-secret-key")


def test_the_fingerprint_covers_tool_cluster_and_arguments() -> None:
    base = fingerprint("vm_action", "alpha", OPERATION)
    assert base == fingerprint("vm_action", "alpha", dict(reversed(list(OPERATION.items()))))
    assert base != fingerprint("vm_action", "beta", OPERATION)
    assert base != fingerprint("container_action", "alpha", OPERATION)
    assert base != fingerprint("vm_action", "alpha", {**OPERATION, "vmid": 101})


@pytest.mark.parametrize("spec", TOOLS, ids=[spec.name for spec in TOOLS])
def test_every_tool_that_changes_something_takes_an_idempotency_key(spec: ToolSpec) -> None:
    offered = "idempotency_key" in spec.input_schema()["properties"]
    assert offered is (not spec.annotations.read_only)
