"""The freeze switch in the control bucket: read it, change it (compare-and-set, so two admins racing both get
their change recorded in order), and claim its changes for the audit (exactly one gateway writes each record)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from proxmox_mcp_contracts.control import (
    FREEZE_AUDITED_KEY,
    FREEZE_KEY,
    ChangeOrigin,
    FreezeChange,
    FreezeState,
    check_reason,
)

from proxmox_mcp_runtime.kv import BucketSpec, KeyExistsError, KeyValueStore, KvEntry, KvError

CONTROL_BUCKET = BucketSpec(name="PMCP_CONTROL", description="proxmox-mcp freeze switch (kill switch)")
"""The same name on both backends: JetStream KV `PMCP_CONTROL`, or a bucket of the gateway's state.db."""
CHANGE_ATTEMPTS = 8


class FreezeStoreError(Exception):
    """The freeze switch could not be changed; the message says why."""


def parse_state(entry: KvEntry | None) -> FreezeState:
    """The stored state (empty: never frozen). A value that is not a FreezeState raises ValueError."""
    if entry is None or entry.value is None:
        return FreezeState()
    return FreezeState.model_validate_json(entry.value)


async def read_freeze(bucket: KeyValueStore) -> tuple[FreezeState, int]:
    entry = await bucket.get(FREEZE_KEY)
    return parse_state(entry), 0 if entry is None else entry.revision


async def change_freeze(bucket: KeyValueStore, *, frozen: bool, by: str, reason: str, via: ChangeOrigin,
                        client: str | None = None, now: datetime | None = None) -> tuple[FreezeState, int]:
    """Freeze or thaw; the new state and its revision. ValueError for a bad reason; FreezeStoreError when the
    store keeps changing under us; KvUnavailableError when it cannot be reached (nothing changed)."""
    reason = check_reason(reason)
    for _ in range(CHANGE_ATTEMPTS):
        entry = await bucket.get(FREEZE_KEY)
        try:
            current = parse_state(entry)
        except ValueError:
            current = FreezeState()  # a damaged value is replaced; its changes were audited when they were made
        new = current.with_change(frozen=frozen, by=by, at=now or datetime.now(UTC), reason=reason, via=via,
                                  client=client)
        body = new.model_dump_json().encode()
        try:
            if entry is None:
                revision = await bucket.create(FREEZE_KEY, body)
            else:
                revision = await bucket.update(FREEZE_KEY, body, revision=entry.revision)
        except KeyExistsError:
            continue
        return new, revision
    raise FreezeStoreError(f"the freeze switch changed {CHANGE_ATTEMPTS} times while this change was being made; "
                           "try again")


@dataclass
class AuditClaim:
    """Changes this process must write to the audit, claimed so that no other gateway writes them too."""

    bucket: KeyValueStore
    changes: list[FreezeChange]
    """Oldest first."""
    revision: int
    previous: bytes | None

    async def release(self) -> None:
        """Give the changes back (the audit write failed): the next gateway to see the state claims them."""
        with contextlib.suppress(KvError):
            if self.previous is None:
                await self.bucket.delete(FREEZE_AUDITED_KEY)
            else:
                await self.bucket.update(FREEZE_AUDITED_KEY, self.previous, revision=self.revision)


async def claim_unaudited(bucket: KeyValueStore, state: FreezeState) -> AuditClaim | None:
    """The changes of `state` no gateway has audited yet, claimed for this one; None when there are none or
    another gateway claimed them first."""
    entry = await bucket.get(FREEZE_AUDITED_KEY)
    try:
        done = int(entry.value or b"0") if entry is not None else 0
    except ValueError:
        done = 0
    if done > state.seq:  # the state was written afresh (its seqs start again): all of it is new
        done = 0
    pending = [change for change in reversed(state.changes) if change.seq > done]
    if not pending:
        return None
    marker = str(state.seq).encode()
    try:
        if entry is None:
            revision = await bucket.create(FREEZE_AUDITED_KEY, marker)
        else:
            revision = await bucket.update(FREEZE_AUDITED_KEY, marker, revision=entry.revision)
    except KeyExistsError:
        return None
    return AuditClaim(bucket=bucket, changes=pending, revision=revision,
                      previous=None if entry is None else entry.value)
