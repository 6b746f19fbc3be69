# pyright: strict
"""A caller who came with an access token from the OpenID provider."""

from __future__ import annotations

from proxmox_mcp_gateway.principal import Principal

TOKEN_ID_PREFIX = "oauth:"


class OAuthPrincipal(Principal):
    """token_id is `oauth:<subject>`, so rate limits and the audit trail follow the identity, never the token."""

    subject: str
    client_id: str | None = None
    issuer: str
    grants: tuple[str, ...] = ()
    """The token's scopes/roles that gave its rights."""

    def audit_identity(self) -> dict[str, object]:
        """Who this is, for the audit record (never the token itself)."""
        return {"sub": self.subject, "client_id": self.client_id, "iss": self.issuer, "grants": list(self.grants)}
