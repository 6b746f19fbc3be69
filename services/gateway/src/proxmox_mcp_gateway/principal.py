"""Who is calling, as the gateway knows it: the Caller the workers see, plus what only the gateway needs."""

from __future__ import annotations

from proxmox_mcp_contracts.envelope import Caller


class Principal(Caller):
    """A Caller plus what only the gateway needs. Envelopes carry the Caller fields only (pydantic
    serializes a field by its declared type), so the allowlist never travels to the workers."""

    allowed_tools: frozenset[str] | None = None
    """Tools this token may use; None = every tool its scope allows."""
    name: str | None = None
