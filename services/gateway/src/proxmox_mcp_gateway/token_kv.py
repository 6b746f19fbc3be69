"""Bearer tokens in a key-value bucket (PMCP_TOKENS on JetStream): what every gateway replica and the CLI share.

The entries are the token file's (`TokenEntry` JSON, hashes only), one per key `token.<id>`. Names stay unique
among live tokens through a compare-and-set claim `name.<digest>` -> id, so two `token create` racing for one
name cannot both win. Gateways never read the bucket per request: each keeps a `TokenSnapshot` fed by a watch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from proxmox_mcp_runtime.kv import KeyExistsError, KeyValueStore, KvEntry
from pydantic import ValidationError

from proxmox_mcp_gateway.state_names import IMPORT_MARKER_KEY, NAME_KEY_PREFIX, TOKEN_KEY_PREFIX
from proxmox_mcp_gateway.tokens import (
    NewToken,
    TokenEntry,
    TokenGrant,
    TokenStore,
    TokenStoreError,
    live_name_taken,
    revoked_copy,
    unknown_token,
)

log = logging.getLogger(__name__)


def _token_key(token_id: str) -> str:
    return f"{TOKEN_KEY_PREFIX}{token_id}"


def _name_key(name: str) -> str:
    return f"{NAME_KEY_PREFIX}{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def _encode(entry: TokenEntry) -> bytes:
    return entry.model_dump_json().encode()


def _decode(value: bytes) -> TokenEntry:
    return TokenEntry.model_validate_json(value)


@dataclass(frozen=True)
class ImportResult:
    imported: int
    skipped: int
    """Entries whose id the bucket already had (a token revoked there stays revoked)."""
    source: Path


class KvTokenStore:
    """Create, revoke, list and import tokens in the bucket. KvError (KvUnavailableError when JetStream does not
    answer) passes through: the CLI says so, nothing is half-done that a retry would not finish."""

    def __init__(self, bucket: KeyValueStore) -> None:
        self.bucket = bucket

    async def load(self) -> list[TokenEntry]:
        snapshot = TokenSnapshot()
        watch = await self.bucket.watch(snapshot.apply)
        await watch.stop()
        return sorted(snapshot.current().values(), key=lambda e: (e.created_at, e.id))

    async def get(self, token_id: str) -> TokenEntry | None:
        found = await self.bucket.get(_token_key(token_id))
        return None if found is None or found.value is None else _decode(found.value)

    async def create(self, grant: TokenGrant) -> NewToken:
        new = grant.mint()
        await self._claim_name(grant.name, new.entry.id)
        try:
            await self.bucket.create(_token_key(new.entry.id), _encode(new.entry))
        except KeyExistsError:
            await self._release_name(grant.name, new.entry.id)
            raise TokenStoreError("a token id came out twice (a 1 in 2^48 chance); run the command again") from None
        return new

    async def _claim_name(self, name: str, token_id: str) -> None:
        key = _name_key(name)
        for _ in range(3):
            try:
                await self.bucket.create(key, token_id.encode())
                return
            except KeyExistsError:
                held = await self.bucket.get(key)
            if held is None or held.value is None:
                continue  # released meanwhile: try to create it again
            holder = await self.get(held.value.decode())
            if holder is not None and not holder.revoked:
                raise TokenStoreError(live_name_taken(name))
            try:  # the claim of a revoked (or never finished) token: take it over
                await self.bucket.update(key, token_id.encode(), revision=held.revision)
                return
            except KeyExistsError:
                continue
        raise TokenStoreError(live_name_taken(name))

    async def _release_name(self, name: str, token_id: str) -> None:
        key = _name_key(name)
        held = await self.bucket.get(key)
        if held is not None and held.value == token_id.encode():
            await self.bucket.delete(key)

    async def revoke(self, token_id: str) -> TokenEntry:
        key = _token_key(token_id)
        for _ in range(5):
            found = await self.bucket.get(key)
            if found is None or found.value is None:
                raise TokenStoreError(unknown_token(token_id))
            entry = _decode(found.value)
            if entry.revoked:
                return entry
            revoked = revoked_copy(entry)
            try:
                await self.bucket.update(key, _encode(revoked), revision=found.revision)
            except KeyExistsError:
                continue  # changed under us: read it again
            await self._release_name(entry.name, entry.id)
            return revoked
        raise TokenStoreError(f"token {token_id!r} kept changing while it was being revoked; run the command again")

    async def import_file(self, path: Path) -> ImportResult:
        """Copy the token file's entries into the bucket (ids already there are left alone) and set the import
        marker. TokenStoreError when the file cannot be read."""
        entries = TokenStore(path).load()
        imported = skipped = 0
        for entry in entries:
            try:
                await self.bucket.create(_token_key(entry.id), _encode(entry))
            except KeyExistsError:
                skipped += 1
                continue
            imported += 1
            if not entry.revoked:
                try:
                    await self._claim_name(entry.name, entry.id)
                except TokenStoreError:
                    log.warning("an imported token's name is taken by another live token",
                                extra={"token_id": entry.id})
        result = ImportResult(imported=imported, skipped=skipped, source=path)
        await self.bucket.put(IMPORT_MARKER_KEY, _marker(result))
        return result

    async def import_once(self, path: Path) -> ImportResult | None:
        """The first gateway on a bucket without the marker imports the token file (a missing file counts as
        empty); None when the marker is there. A damaged file is not marked as imported: fixed, it is imported
        at the next start."""
        if await self.bucket.get(IMPORT_MARKER_KEY) is not None:
            return None
        return await self.import_file(path)


def _marker(result: ImportResult) -> bytes:
    return json.dumps({"imported_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                       "source": str(result.source), "imported": result.imported,
                       "skipped": result.skipped}).encode()


class TokenSnapshot:
    """The tokens as a gateway sees them: every entry of the bucket, kept current by a watch (apply is its
    callback). Until `loaded` is set (the watch delivered its snapshot) `tokens()` is None: stored tokens are
    refused, not checked against a partial view."""

    def __init__(self) -> None:
        self.loaded = False
        self._entries: dict[str, TokenEntry] = {}

    def apply(self, change: KvEntry) -> None:
        if not change.key.startswith(TOKEN_KEY_PREFIX):
            return
        token_id = change.key.removeprefix(TOKEN_KEY_PREFIX)
        if change.value is None:
            self._entries.pop(token_id, None)
            return
        try:
            self._entries[token_id] = _decode(change.value)
        except ValidationError:
            # Fail closed for this token only: an entry we cannot read grants nothing.
            self._entries.pop(token_id, None)
            log.error("a token entry in the bucket is damaged; that token is refused", extra={"token_id": token_id})

    def current(self) -> Mapping[str, TokenEntry]:
        return self._entries

    def tokens(self) -> Mapping[str, TokenEntry] | None:
        return self._entries if self.loaded else None
