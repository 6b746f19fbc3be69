"""The replicated copy of the audit log: every record stored in the JetStream stream PMCP_AUDIT before the reply.

A record counts as stored when JetStream acknowledges the publish: the stream's leader has it and a quorum of
its replicas (2 of 3 with PMCP_STATE_REPLICAS=3) have accepted it. That ack is not an fsync: nats-server writes
to its files at once but syncs them only every `sync_interval` (2 minutes by default), so a power cut of a
quorum's hosts could lose the newest records. Hence the product's guarantee is both: acknowledged by a quorum
of JetStream nodes AND fsync'd in the gateway's local audit file, before the reply (audit.AuditLog does both).

A publish retries (same message id, so a retry of a publish that was stored after all is dropped as a
duplicate; the id is the record's chain and sequence number, so a record the audit log stores again later is
dropped the same way within the stream's duplicate window) until `timeout`: a stream whose leader died elects
another in a few seconds and calls wait through it. Past the timeout, AuditError: the call fails closed.
"""

from __future__ import annotations

import asyncio
import logging

import nats.js.errors
from nats.js import api

from proxmox_mcp_gateway.audit import AuditError
from proxmox_mcp_gateway.jetstream_calls import (
    UNANSWERED,
    JetStreamContexts,
    NatsSource,
    NotConnected,
    ensure_stream,
    until_answered,
)
from proxmox_mcp_gateway.state_names import AUDIT_STREAM, AUDIT_SUBJECTS, audit_subject

log = logging.getLogger(__name__)


def audit_stream_config(replicas: int) -> api.StreamConfig:
    """Kept for ever (no limits): an operator who wants a retention sets it on the stream (`nats stream edit
    PMCP_AUDIT --max-age 400d`); gateways create the stream when it is missing and never change it."""
    return api.StreamConfig(name=AUDIT_STREAM, description="proxmox-mcp audit records (one JSON object each)",
                            subjects=[AUDIT_SUBJECTS], storage=api.StorageType.FILE, num_replicas=replicas,
                            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD,
                            duplicate_window=120.0, allow_direct=True)


class JetStreamAudit:
    """AuditLog's replica: store(line) returns once JetStream acknowledged the record."""

    def __init__(self, nats_client: NatsSource, *, gateway_id: str, replicas: int, timeout: float = 10.0) -> None:
        self.replicas = replicas
        self.timeout = timeout
        self.subject = audit_subject(gateway_id)
        self._contexts = JetStreamContexts(nats_client, timeout=min(timeout, 2.0))
        self._ensured = False
        self._ensure_lock = asyncio.Lock()

    async def ensure(self) -> None:
        """The stream exists (created with this gateway's replicas when missing); raises what nats-py raises."""
        js = self._contexts.get()
        async with self._ensure_lock:
            if not self._ensured:
                await ensure_stream(js, audit_stream_config(self.replicas))
                self._ensured = True

    async def store(self, line: bytes, message_id: str) -> None:
        headers: dict[str, str] = {api.Header.MSG_ID.value: message_id}

        async def publish(seconds: float) -> None:
            await self.ensure()
            await self._contexts.get().publish(self.subject, line, headers=headers, timeout=seconds)

        try:
            await until_answered(publish, timeout=self.timeout)
        except (*UNANSWERED, NotConnected) as exc:
            log.error("audit stream publish failed", extra={"stream": AUDIT_STREAM, "error_type": type(exc).__name__})
            raise AuditError(f"the audit record could not be stored: no quorum of the audit stream {AUDIT_STREAM} "
                             f"on NATS JetStream acknowledged it within {self.timeout:g} s ({type(exc).__name__})",
                             unavailable=True) from None
        except nats.js.errors.APIError as exc:
            # Refused for good (the stream is sealed, full, or its subjects were changed): no retry helps.
            raise AuditError(f"the audit record could not be stored: the audit stream {AUDIT_STREAM} on NATS "
                             f"JetStream refused it ({exc.description or type(exc).__name__})") from None
