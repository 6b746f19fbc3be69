# pyright: strict
"""The OpenID provider's signing keys: found through OpenID discovery, cached, refetched when a token names a
key id the cache does not know (at most once per min_refresh, so forged key ids cannot make the gateway hammer
the provider), and refreshed when older than cache_seconds."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeGuard, cast

import httpx2
import jwt
from jwt import PyJWK

from proxmox_mcp_gateway.oauth.config import check_url

log = logging.getLogger(__name__)

FetchJson = Callable[[str], Awaitable[Mapping[str, Any]]]
"""GET a URL, return its JSON object; raise KeyFetchError when that fails."""

_FAMILY = {"RSA": ("RS", "PS"), "EC": ("ES",), "OKP": ("EdDSA",)}
_EC_ALGORITHM = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class KeyFetchError(RuntimeError):
    """The provider's metadata or key set could not be fetched or is unusable; the message says which."""


class UnknownKeyError(LookupError):
    """The token names a key the provider does not publish (after a refresh, or while refreshes are paused)."""


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery 1.0 §4: the issuer with `/.well-known/openid-configuration` appended."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def key_algorithm(jwk: Mapping[str, Any], header_alg: str) -> str | None:
    """The algorithm a published key verifies with: its own `alg`, else the token's if the key type allows it
    (an RSA key without `alg` may sign RS256 or PS256). None: this key cannot verify that algorithm."""
    declared = jwk.get("alg")
    if isinstance(declared, str):
        return declared if declared == header_alg else None
    kty = jwk.get("kty")
    if kty == "EC":
        return header_alg if _EC_ALGORITHM.get(str(jwk.get("crv"))) == header_alg else None
    prefixes = _FAMILY.get(str(kty), ())
    return header_alg if any(header_alg.startswith(prefix) for prefix in prefixes) else None


class KeySource:
    def __init__(self, issuer: str, fetch: FetchJson, *, jwks_url: str | None = None, cache_seconds: float = 3600.0,
                 min_refresh_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self._fetch = fetch
        self._jwks_url = jwks_url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: list[Mapping[str, Any]] | None = None
        self._built: dict[tuple[str | None, str], PyJWK] = {}
        """Keys already turned into verifiers, by (kid, alg); emptied when the key set changes."""
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """Key set fetches so far (tests and metrics read it)."""

    async def key_for(self, kid: str | None, alg: str) -> PyJWK:
        """The published key that verifies this token. KeyFetchError: no key set could be had at all;
        UnknownKeyError: the key set has no such key."""
        if self._keys is None or self._clock() - self._fetched_at >= self._cache_seconds:
            await self._refresh()
        key = self._find(kid, alg)
        if key is None and self._may_fetch():
            await self._refresh()
            key = self._find(kid, alg)
        if key is None:
            raise UnknownKeyError("the token is signed with a key the provider does not publish")
        return key

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._min_refresh

    async def _refresh(self) -> None:
        started = self._attempted_at
        async with self._lock:
            # A request that waited here while another fetched uses that result instead of fetching again.
            if self._attempted_at == started and self._may_fetch():
                self._attempted_at = self._clock()
                try:
                    keys = await self._fetch_keys()
                except KeyFetchError as exc:
                    if self._keys is None:
                        raise
                    log.warning("could not refresh the OpenID provider's keys; keeping the cached ones",
                                extra={"reason": str(exc)})
                else:
                    self._keys, self._fetched_at, self._built = keys, self._clock(), {}
        if self._keys is None:
            raise KeyFetchError("the provider's keys could not be fetched a moment ago; retrying shortly")

    async def _fetch_keys(self) -> list[Mapping[str, Any]]:
        if self._jwks_url is None:
            document = await self._fetch(discovery_url(self.issuer))
            if document.get("issuer") != self.issuer:
                raise KeyFetchError("the provider's discovery document names another issuer than PMCP_OAUTH_ISSUER")
            uri = document.get("jwks_uri")
            if not isinstance(uri, str):
                raise KeyFetchError("the provider's discovery document has no jwks_uri")
            try:
                self._jwks_url = check_url(uri, "jwks_uri")
            except ValueError as exc:
                raise KeyFetchError(str(exc)) from None
        self.fetches += 1
        jwks = await self._fetch(self._jwks_url)
        raw_keys = jwks.get("keys")
        if not isinstance(raw_keys, list):
            raise KeyFetchError("the provider's key set has no keys array")
        keys = [key for key in cast("list[object]", raw_keys) if _signing_key(key)]
        if not keys:
            raise KeyFetchError("the provider's key set has no public signing key")
        return keys

    def _find(self, kid: str | None, alg: str) -> PyJWK | None:
        built = self._built.get((kid, alg))
        if built is None:
            built = self._build(kid, alg)
            if built is not None:
                self._built[(kid, alg)] = built
        return built

    def _build(self, kid: str | None, alg: str) -> PyJWK | None:
        candidates = [key for key in self._keys or [] if kid is None or key.get("kid") == kid]
        usable = [(key, algorithm) for key in candidates if (algorithm := key_algorithm(key, alg)) is not None]
        if kid is None and len(usable) != 1:
            return None  # without a key id only an unambiguous key set is usable
        for key, algorithm in usable:
            try:
                return PyJWK(dict(key), algorithm=algorithm)
            except jwt.PyJWTError:
                continue
        return None


def _signing_key(key: object) -> TypeGuard[Mapping[str, Any]]:
    """Public keys for signatures only: no symmetric (oct) keys, no encryption keys, no private parts."""
    if not isinstance(key, dict):
        return False
    jwk = cast("dict[str, Any]", key)
    return jwk.get("kty") in _FAMILY and jwk.get("use", "sig") == "sig" and "d" not in jwk


class HttpJsonFetcher:
    """GETs the provider's JSON documents: short timeout, no redirects, a size cap, the configured CA."""

    MAX_BYTES = 512 * 1024

    def __init__(self, *, timeout: float, ca_file: str | None = None) -> None:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._client = httpx2.AsyncClient(timeout=timeout, verify=verify, follow_redirects=False,
                                          headers={"Accept": "application/json"})

    async def __call__(self, url: str) -> Mapping[str, Any]:
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise KeyFetchError(f"GET {url} answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > self.MAX_BYTES:
                        raise KeyFetchError(f"GET {url}: the answer is larger than {self.MAX_BYTES} bytes")
        except httpx2.HTTPError as exc:
            raise KeyFetchError(f"GET {url} failed ({type(exc).__name__})") from None
        try:
            document: object = json.loads(body)
        except ValueError:
            raise KeyFetchError(f"GET {url}: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise KeyFetchError(f"GET {url}: the answer is not a JSON object")
        return cast("dict[str, Any]", document)

    async def aclose(self) -> None:
        await self._client.aclose()
