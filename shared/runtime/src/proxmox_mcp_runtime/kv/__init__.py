"""Shared state for gateway replicas and workers: key-value buckets on JetStream (several replicas) or in a local
SQLite file (one gateway). Tokens, task records, idempotency keys and the freeze switch live here."""

from proxmox_mcp_runtime.kv.base import (
    BucketSpec,
    ChangeCallback,
    KeyExistsError,
    KeyValueStore,
    KvEntry,
    KvError,
    KvUnavailableError,
    KvWatch,
    StateBackend,
)

__all__ = [
    "BucketSpec",
    "ChangeCallback",
    "KeyExistsError",
    "KeyValueStore",
    "KvEntry",
    "KvError",
    "KvUnavailableError",
    "KvWatch",
    "StateBackend",
]
