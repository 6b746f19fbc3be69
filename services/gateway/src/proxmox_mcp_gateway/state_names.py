"""Names of the state gateway replicas share on JetStream: one place for the gateway, the CLI and the tests.

Buckets (KV): PMCP_TOKENS and PMCP_SLOTS here; PMCP_TASKS and PMCP_IDEMPOTENCY are defined beside their records
(task_records.py, idempotency.py), PMCP_CONTROL (the freeze switch, which workers read too) in the runtime's
control package. Streams: PMCP_AUDIT (every audit record) and one PMCP_RATE_*
per rate-limit spec in use.
"""

from __future__ import annotations

from proxmox_mcp_runtime.kv import BucketSpec

TOKENS = BucketSpec(name="PMCP_TOKENS", history=5, description="proxmox-mcp bearer tokens (SHA-256 hashes and grants)")
TOKEN_KEY_PREFIX = "token."
"""`token.<id>`: one token's entry (JSON, as in the token file)."""
NAME_KEY_PREFIX = "name."
"""`name.<sha256 of the name, 32 hex>`: the id of the live token with that name (names are unique among them)."""
IMPORT_MARKER_KEY = "meta.file-import"
"""Set once the token file was imported (or found empty): later gateways never import it again."""

SLOTS = BucketSpec(name="PMCP_SLOTS", description="proxmox-mcp calls in flight per token (entries expire unless "
                   "their gateway renews them)")


AUDIT_STREAM = "PMCP_AUDIT"
AUDIT_SUBJECTS = "pmcp.audit.>"


def audit_subject(gateway_id: str) -> str:
    """Each gateway publishes under its own id, so a reader can tell (and filter) who wrote a record."""
    return f"pmcp.audit.{gateway_id}"


RATE_STREAM_PREFIX = "PMCP_RATE_"


def rate_stream(capacity: int, period_ms: int) -> tuple[str, str]:
    """The stream holding every window of one `N/PERIOD` spec, and its subject prefix."""
    return f"{RATE_STREAM_PREFIX}{capacity}_{period_ms}", f"pmcp.rate.{capacity}_{period_ms}"
