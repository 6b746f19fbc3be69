"""OAuth 2.1 resource server (MCP authorization spec): access tokens from an external OpenID provider, checked
against its published keys, mapped to the gateway's scopes and command profiles; protected resource metadata
(RFC 9728) tells clients where to get them. Our own bearer tokens work beside it."""
