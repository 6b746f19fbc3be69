"""The gateway's state as PMCP_STATE chooses it.

`local` (one gateway): the token file, the fsync'd audit file, limits in memory; nothing to start.
`jetstream` (several replicas): tokens from the PMCP_TOKENS bucket (a snapshot kept current by a watch; the
token file imported once), every audit record also in the PMCP_AUDIT stream, rate limits and concurrency caps
counted on JetStream. Those need NATS: `StateKeeper.run()` loads them once the gateway is connected, retrying
until the cluster answers; until then stored tokens are refused and readiness says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.js.errors
from proxmox_mcp_runtime.kv import KeyValueStore, KvError, KvWatch

from proxmox_mcp_gateway.audit import AuditError
from proxmox_mcp_gateway.audit_stream import JetStreamAudit
from proxmox_mcp_gateway.auth import TokenSource
from proxmox_mcp_gateway.jetstream_calls import UNANSWERED, JetStreamContexts, NatsSource, NotConnected
from proxmox_mcp_gateway.limits import RateSpec, parse_tool_rates
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_limits import JetStreamRates, KvSlots, SharedCallLimiter
from proxmox_mcp_gateway.shared_state import SharedState
from proxmox_mcp_gateway.state_names import SLOTS, TOKENS
from proxmox_mcp_gateway.token_kv import KvTokenStore, TokenSnapshot
from proxmox_mcp_gateway.tokens import TokenStoreError

log = logging.getLogger(__name__)

NOT_ANSWERING: tuple[type[BaseException], ...] = (KvError, AuditError, NotConnected, nats.js.errors.APIError,
                                                  *UNANSWERED)


@dataclass
class StateKeeper:
    """The parts of the call path that depend on PMCP_STATE, and their start on JetStream."""

    kind: str
    shared: SharedState
    token_file: Path
    tokens: TokenSnapshot | None = None
    """jetstream: the authenticator's token source."""
    audit_replica: JetStreamAudit | None = None
    limiter: SharedCallLimiter | None = None
    """jetstream: the shared limits (local: build_security's in-memory CallLimiter)."""
    last_error: str | None = None
    _watch: KvWatch | None = None

    @property
    def token_source(self) -> TokenSource | None:
        """None: the authenticator reads the token file."""
        return self.tokens

    def ready(self) -> bool:
        return self.tokens is None or self.tokens.loaded

    def report(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind}
        if self.tokens is not None:
            body["tokens"] = "loaded" if self.tokens.loaded else "loading"
            if not self.tokens.loaded and self.last_error:
                body["last_error"] = self.last_error
        return body

    async def run(self) -> None:
        """Load what the JetStream state needs (a no-op for local state); retries until the cluster answers."""
        if self.tokens is None:
            return
        delay = 0.2
        while True:
            try:
                await self._load()
                self.last_error = None
                return
            except NOT_ANSWERING as exc:
                self.last_error = f"NATS JetStream did not answer ({type(exc).__name__}: {exc})"
                log.warning("shared state not loaded yet", extra={"error_type": type(exc).__name__,
                                                                   "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _load(self) -> None:
        assert self.tokens is not None
        bucket = await self.shared.bucket(TOKENS)
        await self._import_token_file(KvTokenStore(bucket))
        if self._watch is None:
            self._watch = await bucket.watch(self.tokens.apply)
            self.tokens.loaded = True
            log.info("tokens loaded from JetStream", extra={"tokens": len(self.tokens.current())})
        if self.audit_replica is not None:
            await self.audit_replica.ensure()

    async def _import_token_file(self, store: KvTokenStore) -> None:
        try:
            result = await store.import_once(self.token_file)
        except TokenStoreError as exc:
            # Not marked as imported: once the file is fixed, the next start imports it.
            log.error("the token file could not be imported into JetStream", extra={"reason": str(exc)})
            return
        if result is not None:
            log.info("token file imported into JetStream (once for the cluster)",
                     extra={"imported": result.imported, "skipped": result.skipped, "source": str(result.source)})

    async def close(self) -> None:
        if self._watch is not None:
            with contextlib.suppress(Exception):
                await self._watch.stop()
            self._watch = None
        if self.limiter is not None:
            await self.limiter.close()


def state_keeper_for(settings: GatewaySettings, shared: SharedState, nats_client: NatsSource,
                     gateway_id: str) -> StateKeeper:
    if settings.state != "jetstream":
        return StateKeeper(kind="local", shared=shared, token_file=settings.tokens_path())
    timeout = settings.state_timeout
    audit = JetStreamAudit(nats_client, gateway_id=gateway_id, replicas=settings.state_replicas, timeout=timeout)
    rates = JetStreamRates(JetStreamContexts(nats_client, timeout=min(timeout, 2.0)),
                           replicas=settings.state_replicas, timeout=timeout)

    async def slots_bucket() -> KeyValueStore:
        return await shared.bucket(SLOTS)

    slots = KvSlots(slots_bucket, owner=gateway_id, ttl=settings.slot_ttl, timeout=timeout)
    limiter = SharedCallLimiter(RateSpec.parse(settings.rate_limit), parse_tool_rates(settings.tool_rate_limits),
                                settings.max_concurrent_per_token, rates=rates, slots=slots)
    return StateKeeper(kind="jetstream", shared=shared, token_file=settings.tokens_path(), tokens=TokenSnapshot(),
                       audit_replica=audit, limiter=limiter)
