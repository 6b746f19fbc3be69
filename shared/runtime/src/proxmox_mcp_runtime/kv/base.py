"""The key-value contract both backends keep (JetStream KV and the local SQLite file).

Keys are dotted tokens of `[A-Za-z0-9_=-]` (what JetStream allows, minus `/`), at most 255 characters. Revisions
grow per bucket; `create` and `update` are compare-and-set, so two gateways can race for one key and exactly one
wins. A watch delivers every current entry before it returns (a complete snapshot), then each change as it
happens; a deleted key arrives with `value=None`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$")
MAX_KEY_LENGTH = 255


class KvError(Exception):
    """A key-value operation failed; the message says why (never a value)."""


class KeyExistsError(KvError):
    """`create` found the key already there, or `update` found a newer revision than the one given."""


class KvUnavailableError(KvError):
    """The store cannot answer now (NATS down, no JetStream quorum, timeout): fail closed."""


@dataclass(frozen=True)
class KvEntry:
    key: str
    value: bytes | None
    """None: the key was deleted (watch only; `get` answers None for a deleted key)."""
    revision: int


@dataclass(frozen=True)
class BucketSpec:
    name: str
    """`[A-Za-z0-9_-]+`, the same name on every backend."""
    ttl: float | None = None
    """Seconds an entry lives after its last write (None: for ever)."""
    history: int = 1
    description: str = ""


ChangeCallback = Callable[[KvEntry], None]


class KvWatch(Protocol):
    async def stop(self) -> None: ...


class KeyValueStore(Protocol):
    @property
    def bucket(self) -> str: ...

    async def get(self, key: str) -> KvEntry | None: ...

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        """Store value only if the key has none; the new revision. KeyExistsError otherwise. ttl: this entry's own
        lifetime in whole seconds, at least 1 (shorter than the bucket's)."""
        ...

    async def update(self, key: str, value: bytes, *, revision: int, ttl: float | None = None) -> int:
        """Store value only if the key's latest revision is `revision`; KeyExistsError otherwise. ttl: the new
        value's own lifetime in seconds (renews an entry created with a ttl; None: the bucket's)."""
        ...

    async def put(self, key: str, value: bytes) -> int: ...

    async def delete(self, key: str) -> None: ...

    async def keys(self) -> list[str]: ...

    async def watch(self, on_change: ChangeCallback) -> KvWatch:
        """Call on_change for every live entry, then return; later changes follow as they happen."""
        ...


class StateBackend(Protocol):
    @property
    def kind(self) -> str:
        """`local` or `jetstream`."""
        ...

    async def bucket(self, spec: BucketSpec) -> KeyValueStore:
        """The bucket, created when missing (same settings on every replica)."""
        ...

    async def close(self) -> None: ...


def check_ttl(ttl: float | None) -> int | None:
    """Per-entry lifetimes are whole seconds, at least one (what JetStream's Nats-TTL header takes)."""
    if ttl is None:
        return None
    if ttl < 1 or ttl != int(ttl):
        raise KvError(f"an entry's ttl must be a whole number of seconds, at least 1 (got {ttl})")
    return int(ttl)


def check_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise KvError(f"invalid key ({len(key)} characters): use dotted tokens of letters, digits, '_', '=', '-'")
    return key
