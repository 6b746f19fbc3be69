# pyright: strict
"""Checks one access token (a JWT, RFC 9068) and says who it is for and what it may do.

Checked: the issuer (before any key lookup, so foreign tokens cannot make the gateway refetch keys), the
algorithm (public-key algorithms from the allowed list only, and the one the published key is for), the
signature with the provider's key named by `kid`, the audience (this server's canonical URI, RFC 8707), exp,
nbf and iat with a small leeway, a subject, and the token type when the header names one.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import jwt

from proxmox_mcp_gateway.oauth.config import OAuthConfig
from proxmox_mcp_gateway.oauth.grants import rights_for, token_grants
from proxmox_mcp_gateway.oauth.jwks import KeyFetchError, KeySource, UnknownKeyError
from proxmox_mcp_gateway.oauth.principal import TOKEN_ID_PREFIX, OAuthPrincipal

_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
"""Header `typ` values of an access token (RFC 9068 asks for at+jwt; many providers still say JWT)."""
_MAX_TOKEN = 16 * 1024
_MAX_IDENTIFIER = 256


class Refusal(StrEnum):
    INVALID = "invalid_token"
    EXPIRED = "expired"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    UNAVAILABLE = "idp_unavailable"


class TokenRefused(Exception):
    def __init__(self, kind: Refusal, message: str, token_id: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.token_id = token_id
        """oauth:<subject> when the token was valid but gives no rights here (for the audit record)."""


@dataclass(frozen=True)
class _Failure:
    kind: Refusal
    message: str


_PYJWT_FAILURES: tuple[tuple[type[jwt.PyJWTError], _Failure], ...] = (
    (jwt.ExpiredSignatureError, _Failure(Refusal.EXPIRED, "the access token has expired")),
    (jwt.ImmatureSignatureError, _Failure(Refusal.INVALID, "the access token is not valid yet")),
    (jwt.InvalidAudienceError, _Failure(Refusal.INVALID, "the access token was issued for another resource")),
    (jwt.InvalidIssuerError, _Failure(Refusal.INVALID, "the access token comes from an issuer this server does "
                                                       "not trust")),
    (jwt.InvalidSignatureError, _Failure(Refusal.INVALID, "the access token's signature does not verify")),
    (jwt.InvalidAlgorithmError, _Failure(Refusal.INVALID, "the access token's signing algorithm is not accepted")),
)


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: the JWT path takes it. Our pmcp_ tokens never contain a dot."""
    return len(token) <= _MAX_TOKEN and _JWT_SHAPE.match(token) is not None


class AccessTokenValidator:
    def __init__(self, config: OAuthConfig, keys: KeySource) -> None:
        self.config = config
        self.keys = keys

    async def principal(self, token: str, address: str | None = None) -> OAuthPrincipal:
        """The caller this token stands for; TokenRefused says why not."""
        return self._principal(await self.claims(token), address)

    async def claims(self, token: str) -> dict[str, Any]:
        config = self.config
        header, unverified = _unverified_parts(token)
        if unverified.get("iss") != config.issuer:
            raise TokenRefused(Refusal.INVALID, "the access token comes from an issuer this server does not trust")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise TokenRefused(Refusal.INVALID, "the access token's signing algorithm is not accepted")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            raise TokenRefused(Refusal.INVALID, "the token is not an access token")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused(Refusal.INVALID, "the access token is malformed")
        try:
            key = await self.keys.key_for(kid, alg)
        except UnknownKeyError as exc:
            raise TokenRefused(Refusal.INVALID, str(exc)) from None
        except KeyFetchError:
            raise TokenRefused(Refusal.UNAVAILABLE, "the identity provider's keys cannot be fetched now; "
                                                    "try again shortly") from None
        try:
            return jwt.decode(token, key, algorithms=list(config.algorithms), audience=config.resource,
                              issuer=config.issuer, leeway=config.leeway,
                              options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(Refusal.INVALID, f"the access token has no {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            failure = next((f for kind, f in _PYJWT_FAILURES if isinstance(exc, kind)), None)
            if failure is None:
                raise TokenRefused(Refusal.INVALID, "the access token is not valid") from None
            raise TokenRefused(failure.kind, failure.message) from None

    def _principal(self, claims: dict[str, Any], address: str | None) -> OAuthPrincipal:
        subject = _identifier(claims.get("sub"))
        if subject is None:
            raise TokenRefused(Refusal.INVALID, "the access token's subject is not usable")
        client_id = _identifier(claims.get("client_id")) or _identifier(claims.get("azp"))
        rights = rights_for(token_grants(claims, self.config.roles_claim), self.config.grants)
        if rights is None:
            raise TokenRefused(Refusal.INSUFFICIENT_SCOPE, "the access token grants no access to this server",
                               token_id=TOKEN_ID_PREFIX + subject)
        return OAuthPrincipal(token_id=TOKEN_ID_PREFIX + subject, scope=rights.scope, command_profile=rights.profile,
                              address=address, name=client_id, subject=subject, client_id=client_id,
                              issuer=self.config.issuer, grants=rights.grants)


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before any check, to pick the key and turn foreign tokens away early (PyJWT decodes
    and checks everything again with the key)."""
    try:
        head, body, _ = token.split(".")
        parts = [json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in (head, body)]
    except (ValueError, RecursionError):
        raise TokenRefused(Refusal.INVALID, "the access token is malformed") from None
    if not all(isinstance(part, dict) for part in parts):
        raise TokenRefused(Refusal.INVALID, "the access token is malformed")
    return cast("dict[str, Any]", parts[0]), cast("dict[str, Any]", parts[1])


def _identifier(value: object) -> str | None:
    """A claim used as an identity: a non-empty printable string of bounded length."""
    if not isinstance(value, str) or not value or len(value) > _MAX_IDENTIFIER or not value.isprintable():
        return None
    return value
