# pyright: strict
"""The gateway as an OAuth 2.1 resource server: decides which presented tokens are OAuth access tokens, turns a
token into a caller or into the HTTP refusal the MCP authorization spec asks for (401 invalid_token, 403
insufficient_scope, each with a WWW-Authenticate naming the metadata URL), and serves the protected resource
metadata (RFC 9728)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proxmox_mcp_gateway.oauth.config import OAuthConfig, check_algorithms, parse_grants
from proxmox_mcp_gateway.oauth.jwks import HttpJsonFetcher, KeySource
from proxmox_mcp_gateway.oauth.principal import OAuthPrincipal
from proxmox_mcp_gateway.oauth.validator import AccessTokenValidator, Refusal, TokenRefused, looks_like_jwt
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.tokens import TOKEN_PREFIX

REALM = "proxmox-mcp"


class OAuthConfigError(ValueError):
    """An OAuth setting cannot be used; the message names it."""


@dataclass(frozen=True)
class OAuthRejection:
    status: int
    info: ErrorInfo
    challenge: bytes | None
    """The WWW-Authenticate value (None for 503: the token may be fine, the provider is not reachable)."""
    token_id: str | None = None


def www_authenticate(*, error: str | None = None, description: str | None = None, scope: str | None = None,
                     metadata_url: str | None = None) -> bytes:
    """A Bearer challenge (RFC 6750 §3) with the MCP spec's resource_metadata (RFC 9728 §5.1)."""
    params = [("realm", REALM), ("error", error), ("error_description", description), ("scope", scope),
              ("resource_metadata", metadata_url)]
    # RFC 6750 §3: the values are quoted strings; ours never contain a quote or a backslash, but make sure.
    text = ", ".join(f'{name}="{_quotable(value)}"' for name, value in params if value is not None)
    return f"Bearer {text}".encode()


def _quotable(value: str) -> str:
    return "".join(ch for ch in value if ch not in '"\\' and ch.isprintable())


def config_from(settings: GatewaySettings, known_profiles: Collection[str]) -> OAuthConfig | None:
    """None when PMCP_OAUTH_ISSUER is unset (OAuth off)."""
    if settings.oauth_issuer is None:
        return None
    assert settings.oauth_resource is not None  # GatewaySettings requires it with an issuer
    grants = parse_grants(settings.oauth_grants)
    unknown = sorted({rule.profile for rule in grants if rule.profile is not None} - set(known_profiles))
    if unknown:
        raise OAuthConfigError(f"PMCP_OAUTH_GRANTS: unknown command profile(s) {', '.join(unknown)}; known: "
                               f"{', '.join(sorted(known_profiles))}")
    return OAuthConfig(issuer=settings.oauth_issuer, resource=settings.oauth_resource, grants=grants,
                       algorithms=check_algorithms(settings.oauth_algorithms), leeway=settings.oauth_leeway,
                       roles_claim=settings.oauth_roles_claim, jwks_url=settings.oauth_jwks_url,
                       jwks_cache_seconds=settings.oauth_jwks_cache_seconds,
                       jwks_min_refresh_seconds=settings.oauth_jwks_min_refresh_seconds,
                       http_timeout=settings.oauth_http_timeout,
                       ca_file=str(settings.oauth_ca_file) if settings.oauth_ca_file is not None else None)


class OAuthResourceServer:
    def __init__(self, config: OAuthConfig, validator: AccessTokenValidator,
                 fetcher: HttpJsonFetcher | None = None) -> None:
        self.config = config
        self.validator = validator
        self._fetcher = fetcher

    @classmethod
    def from_config(cls, config: OAuthConfig) -> OAuthResourceServer:
        fetcher = HttpJsonFetcher(timeout=config.http_timeout, ca_file=config.ca_file)
        keys = KeySource(config.issuer, fetcher, jwks_url=config.jwks_url, cache_seconds=config.jwks_cache_seconds,
                         min_refresh_seconds=config.jwks_min_refresh_seconds)
        return cls(config, AccessTokenValidator(config, keys), fetcher)

    def handles(self, token: str | None) -> bool:
        """Whether this token goes the OAuth way. A pmcp_ token never does; anything JWT-shaped always does."""
        return token is not None and not token.startswith(TOKEN_PREFIX) and looks_like_jwt(token)

    async def authenticate(self, token: str, address: str | None) -> OAuthPrincipal | OAuthRejection:
        try:
            return await self.validator.principal(token, address)
        except TokenRefused as refused:
            return self._rejection(refused)

    def _rejection(self, refused: TokenRefused) -> OAuthRejection:
        details: dict[str, Any] = {"reason": refused.kind.value}
        url = self.config.metadata_url
        if refused.kind is Refusal.UNAVAILABLE:
            info = ErrorInfo(code=ErrorCode.UNAVAILABLE, message=refused.message, retryable=True, details=details)
            return OAuthRejection(503, info, None)
        if refused.kind is Refusal.INSUFFICIENT_SCOPE:
            needed = self.config.scope_for(Scope.READ)
            info = ErrorInfo(code=ErrorCode.PERMISSION_DENIED, message=f"{refused.message}; it needs scope {needed}",
                             details={**details, "scope": needed})
            challenge = www_authenticate(error="insufficient_scope", description=refused.message, scope=needed,
                                         metadata_url=url)
            return OAuthRejection(403, info, challenge, refused.token_id)
        info = ErrorInfo(code=ErrorCode.UNAUTHENTICATED, message=refused.message, details=details)
        challenge = www_authenticate(error="invalid_token", description=refused.message, metadata_url=url)
        return OAuthRejection(401, info, challenge, refused.token_id)

    def bearer_challenge(self, error: str | None, description: str | None) -> bytes:
        """The challenge of a 401 on the bearer-token path: with the metadata URL and the scope to ask for, so
        an MCP client without a token can find the provider."""
        scope = self.config.scope_for(Scope.READ) if error is None else None
        return www_authenticate(error=error, description=description, scope=scope,
                                metadata_url=self.config.metadata_url)

    def metadata(self) -> dict[str, Any]:
        """RFC 9728 §2 protected resource metadata."""
        return {
            "resource": self.config.resource,
            "authorization_servers": [self.config.issuer],
            "scopes_supported": self.config.scopes_supported(),
            "bearer_methods_supported": ["header"],
            "resource_name": self.config.resource_name,
        }

    async def metadata_endpoint(self, _request: Request) -> Response:
        """GET (and HEAD) the metadata: JSON, cacheable for a while, readable by browser-based clients."""
        return JSONResponse(self.metadata(), headers={"Cache-Control": "public, max-age=3600",
                                                      "Access-Control-Allow-Origin": "*"})

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()

