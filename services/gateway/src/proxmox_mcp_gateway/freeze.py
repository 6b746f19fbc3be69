"""The freeze switch in the gateway: what it knows of the switch (a guard over the control bucket of its shared
state), the relay that tells the workers in local mode, changes made through the admin endpoints, and one audit
record per change, whoever made it (an admin endpoint, `proxmox-mcp freeze` or another replica)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from proxmox_mcp_contracts.control import ChangeOrigin, FreezeChange, FreezeState
from proxmox_mcp_runtime.control import CONTROL_BUCKET, ControlTiming, FreezeGuard, FreezeStatus, Observation
from proxmox_mcp_runtime.control.relay import FreezeRelay, NatsGetter
from proxmox_mcp_runtime.control.sources import BucketFreezeSource
from proxmox_mcp_runtime.control.store import change_freeze, claim_unaudited
from proxmox_mcp_runtime.kv import KeyValueStore, KvError

from proxmox_mcp_gateway.audit import AuditError, AuditLog, utc_timestamp
from proxmox_mcp_gateway.shared_state import SharedState

log = logging.getLogger(__name__)

StateMode = Literal["local", "jetstream"]


def change_record(change: FreezeChange) -> dict[str, Any]:
    """The audit record of one change, whichever gateway writes it (an admin call's token id and address too)."""
    record: dict[str, Any] = {
        "ts": utc_timestamp(), "event": "freeze" if change.frozen else "thaw", "by": change.by,
        "at": change.at.isoformat(), "reason": change.reason, "via": change.via, "seq": change.seq,
    }
    if change.via == "rest":
        record.update({"token_id": change.by, "client": change.client, "transport": "rest"})
    return record


class GatewayFreeze:
    def __init__(self, state: SharedState, *, mode: StateMode, nats: NatsGetter, audit: AuditLog | None,
                 timing: ControlTiming | None = None) -> None:
        self.mode = mode
        self._state = state
        self._audit = audit
        self._audited_seq = 0
        self.guard = FreezeGuard(BucketFreezeSource(self._bucket), timing, on_status=self._on_status,
                                 name="gateway")
        self.relay = FreezeRelay(nats, self.guard.current) if mode == "local" else None
        """local mode only: the workers cannot read the gateway's state file, so it tells them on NATS."""

    async def _bucket(self) -> KeyValueStore:
        return await self._state.bucket(CONTROL_BUCKET)

    def start(self) -> None:
        self.guard.start()

    async def stop(self) -> None:
        await self.guard.stop()
        if self.relay is not None:
            await self.relay.close()

    async def on_connected(self) -> None:
        """Right after the gateway connects to NATS: in local mode the relay answers workers from now on, instead of
        from the loop's next round (a worker asked in between would refuse calls above read). Never raises."""
        if self.relay is None:
            return
        try:
            await self.relay.publish(await self.guard.current())
        except Exception as exc:  # the loop's next round tries again
            log.warning("freeze switch relay not started yet", extra={"error_type": type(exc).__name__})

    def report(self) -> dict[str, Any]:
        return {**self.guard.status().report(), "backend": self.mode}

    async def _on_status(self, status: FreezeStatus) -> None:
        if self.relay is not None:
            await self.relay.publish(status)
        if status.known and status.state is not None and status.state.seq > self._audited_seq:
            try:
                await self.audit_changes(status.state)
            except AuditError:
                log.error("a freeze switch change could not be audited; retrying")
            except KvError as exc:  # the store went away since the state was confirmed: the next round retries
                log.warning("freeze switch changes not claimed for the audit", extra={"error_type": type(exc).__name__})

    async def audit_changes(self, state: FreezeState) -> None:
        """One audit record for each change of state not audited yet by any gateway. AuditError when a record
        failed (the claim is given back, so the changes are audited on a later try)."""
        if self._audit is None:
            self._audited_seq = state.seq
            return
        claim = await claim_unaudited(await self._bucket(), state)
        if claim is not None:
            try:
                for change in claim.changes:
                    await self._audit.append(change_record(change))
            except AuditError:
                await claim.release()
                raise
        self._audited_seq = max(self._audited_seq, state.seq)

    async def change(self, *, frozen: bool, by: str, reason: str, via: ChangeOrigin,
                     client: str | None = None) -> FreezeStatus:
        """Freeze or thaw, audit the change (unless a replica that saw it first does), then answer: the state as
        this gateway now knows it.

        ValueError for a bad reason; KvError when the store cannot be written (nothing changed); AuditError when
        the change was made but its record could not be written."""
        state, revision = await change_freeze(await self._bucket(), frozen=frozen, by=by, reason=reason, via=via,
                                              client=client)
        self.guard.observe(Observation(state, revision))
        await self.audit_changes(state)
        return self.guard.status()
