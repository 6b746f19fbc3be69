"""Bearer-token authentication of callers: static tokens and the token store, compared as SHA-256 digests.

Stored tokens come from a TokenSource: the token file, re-read when it changes (one stat() per request), or the
snapshot of the JetStream bucket a watch keeps current (token_kv); either way `proxmox-mcp token revoke` takes
effect without a restart, and no request waits on a store.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.envelope import Scope as CallerScope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from proxmox_mcp_runtime.networks import address_in, parse_networks
from starlette.types import ASGIApp, Receive, Scope, Send

from proxmox_mcp_gateway.edge import RejectHook, client_address, send_json_error
from proxmox_mcp_gateway.principal import Principal
from proxmox_mcp_gateway.tokens import TokenEntry, TokenStore, TokenStoreError, token_id_of

if TYPE_CHECKING:
    from proxmox_mcp_gateway.oauth.resource_server import OAuthResourceServer

log = logging.getLogger(__name__)

CALLER_STATE_KEY = "pmcp_caller"


@dataclass(frozen=True)
class TokenRecord:
    """A static token (PMCP_TOKEN / PMCP_TOKEN_FILE)."""

    token_id: str
    digest: bytes
    scope: CallerScope
    command_profile: str = "readonly"


def digest_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class AuthStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ADDRESS_REFUSED = "address_refused"
    UNAVAILABLE = "unavailable"
    """The stored tokens are not loaded yet (JetStream): a stored token can be neither accepted nor refused."""


_MESSAGES = {
    AuthStatus.MISSING: "missing bearer token",
    AuthStatus.INVALID: "invalid bearer token",
    AuthStatus.EXPIRED: "the bearer token has expired",
    AuthStatus.REVOKED: "the bearer token has been revoked",
    AuthStatus.ADDRESS_REFUSED: "this token may not be used from this address",
    AuthStatus.UNAVAILABLE: "this gateway has not loaded the stored tokens from NATS JetStream yet, so it "
                            "refuses them for now; retry shortly or use another gateway",
}


_REASONS = {
    AuthStatus.OK: "ok",
    AuthStatus.MISSING: "missing_token",
    AuthStatus.INVALID: "invalid_token",
    AuthStatus.EXPIRED: "expired",
    AuthStatus.REVOKED: "revoked",
    AuthStatus.ADDRESS_REFUSED: "forbidden_address",
    AuthStatus.UNAVAILABLE: "tokens_not_loaded",
}


@dataclass(frozen=True)
class AuthResult:
    status: AuthStatus
    caller: Principal | None = None
    token_id: str | None = None
    """The token that was presented when it could be identified (also for expired/revoked/refused)."""

    @property
    def message(self) -> str:
        return _MESSAGES.get(self.status, "ok")


class TokenSource(Protocol):
    def tokens(self) -> Mapping[str, TokenEntry] | None:
        """The stored tokens by id; None while they cannot be known (not loaded yet)."""
        ...


class FileTokenSource:
    """The token file, re-read when its inode, mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self._store = TokenStore(path)
        self._entries: dict[str, TokenEntry] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def tokens(self) -> Mapping[str, TokenEntry]:
        try:
            st = os.stat(self._store.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp == self._stamp:
            return self._entries
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._entries = {e.id: e for e in self._store.load()}
                except TokenStoreError as exc:
                    # Fail closed: a store we cannot read grants nothing (static tokens still work).
                    log.error("token store unreadable; stored tokens refused until it is fixed",
                              extra={"reason": str(exc)})
                    self._entries = {}
                self._stamp = stamp
        return self._entries


class TokenAuthenticator:
    def __init__(self, records: list[TokenRecord], store_path: Path | None = None,
                 source: TokenSource | None = None) -> None:
        """store_path: the token file (a FileTokenSource); source: any other store (wins over store_path)."""
        self._records = list(records)
        self._source = source if source is not None else (
            FileTokenSource(store_path) if store_path is not None else None)

    def authenticate(self, secret: str | None, address: str | None = None) -> Caller | None:
        return self.check(secret, address).caller

    def check(self, secret: str | None, address: str | None = None) -> AuthResult:
        if not secret:
            return AuthResult(AuthStatus.MISSING)
        token_id = token_id_of(secret)
        if token_id is not None and self._source is not None:
            stored = self._check_stored(token_id, secret, address)
            if stored.status is not AuthStatus.INVALID:
                return stored
        presented = digest_secret(secret)
        found: TokenRecord | None = None
        for record in self._records:
            # Compare against every record so timing says nothing about which one matched.
            if hmac.compare_digest(presented, record.digest):
                found = record
        if found is None:
            return AuthResult(AuthStatus.INVALID)
        return AuthResult(AuthStatus.OK, Principal(token_id=found.token_id, scope=found.scope,
                                                   command_profile=found.command_profile, address=address),
                          token_id=found.token_id)

    def _check_stored(self, token_id: str, secret: str, address: str | None) -> AuthResult:
        assert self._source is not None
        tokens = self._source.tokens()
        if tokens is None:
            # A static token may have the pmcp_ shape too: it must still work while the store loads.
            presented_digest = digest_secret(secret)
            if any(hmac.compare_digest(presented_digest, record.digest) for record in self._records):
                return AuthResult(AuthStatus.INVALID)
            return AuthResult(AuthStatus.UNAVAILABLE, token_id=token_id)
        entry = tokens.get(token_id)
        presented = hashlib.sha256(secret.encode()).hexdigest()
        expected = entry.hash.removeprefix("sha256:") if entry is not None else "0" * 64
        if not hmac.compare_digest(presented, expected) or entry is None:
            return AuthResult(AuthStatus.INVALID)
        if entry.revoked:
            return AuthResult(AuthStatus.REVOKED, token_id=entry.id)
        if entry.expired(datetime.now(UTC)):
            return AuthResult(AuthStatus.EXPIRED, token_id=entry.id)
        if entry.cidrs and not address_in(address, parse_networks(entry.cidrs)):
            return AuthResult(AuthStatus.ADDRESS_REFUSED, token_id=entry.id)
        caller = Principal(token_id=entry.id, scope=entry.scope, command_profile=entry.profile, address=address,
                           allowed_tools=frozenset(entry.tools) if entry.tools is not None else None,
                           name=entry.name)
        return AuthResult(AuthStatus.OK, caller, token_id=entry.id)


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            text = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


class BearerAuthMiddleware:
    """Requires a valid bearer token on the protected path prefixes; puts the Principal in request.state.
    With oauth, JWT-shaped tokens go to the OAuth resource server instead (and only there)."""

    def __init__(self, app: ASGIApp, authenticator: TokenAuthenticator, protected_prefixes: tuple[str, ...],
                 on_reject: RejectHook | None = None, oauth: OAuthResourceServer | None = None) -> None:
        self.app = app
        self.authenticator = authenticator
        self.protected = protected_prefixes
        self.on_reject = on_reject
        self.oauth = oauth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        protected = any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.protected)
        address = client_address(scope)
        token = bearer_from_headers(scope.get("headers", []))
        if self.oauth is not None and token is not None and self.oauth.handles(token):
            await self._oauth_call(scope, receive, send, token, protected, address)
            return
        result = self.authenticator.check(token, address)
        if result.caller is not None:
            scope.setdefault("state", {})[CALLER_STATE_KEY] = result.caller
        elif protected:
            info = ErrorInfo(code=_CODES.get(result.status, ErrorCode.UNAUTHENTICATED), message=result.message,
                             retryable=result.status is AuthStatus.UNAVAILABLE,
                             details={"reason": _REASONS[result.status]})
            if self.on_reject is not None:
                await self.on_reject(scope, info, address, result.token_id)
            await send_json_error(send, info, extra=self._extra_headers(result.status))
            return
        await self.app(scope, receive, send)

    async def _oauth_call(self, scope: Scope, receive: Receive, send: Send, token: str, protected: bool,
                          address: str | None) -> None:
        assert self.oauth is not None
        outcome = await self.oauth.authenticate(token, address)
        if isinstance(outcome, Principal):
            scope.setdefault("state", {})[CALLER_STATE_KEY] = outcome
        elif protected:
            if self.on_reject is not None:
                await self.on_reject(scope, outcome.info, address, outcome.token_id)
            challenge = [(b"www-authenticate", outcome.challenge)] if outcome.challenge is not None else None
            await send_json_error(send, outcome.info, status=outcome.status, extra=challenge)
            return
        await self.app(scope, receive, send)

    def _extra_headers(self, status: AuthStatus) -> list[tuple[bytes, bytes]]:
        if status is AuthStatus.ADDRESS_REFUSED:
            return []
        if status is AuthStatus.UNAVAILABLE:
            return [(b"retry-after", b"1")]
        return [(b"www-authenticate", self._challenge(status))]

    def _challenge(self, status: AuthStatus) -> bytes:
        error, description = (None, None) if status is AuthStatus.MISSING else ("invalid_token", _MESSAGES[status])
        if self.oauth is not None:
            return self.oauth.bearer_challenge(error, description)
        if error is None:
            return b'Bearer realm="proxmox-mcp"'
        return f'Bearer realm="proxmox-mcp", error="{error}", error_description="{description}"'.encode()


_CODES = {AuthStatus.ADDRESS_REFUSED: ErrorCode.PERMISSION_DENIED, AuthStatus.UNAVAILABLE: ErrorCode.UNAVAILABLE}
