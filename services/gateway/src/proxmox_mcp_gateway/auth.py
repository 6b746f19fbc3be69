"""Bearer-token authentication of callers (tokens are compared as SHA-256 digests, in constant time)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.envelope import Scope as CallerScope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from starlette.types import ASGIApp, Receive, Scope, Send

CALLER_STATE_KEY = "pmcp_caller"


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    digest: bytes
    scope: CallerScope
    command_profile: str = "readonly"


def digest_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TokenAuthenticator:
    def __init__(self, records: list[TokenRecord]) -> None:
        self._records = list(records)

    def authenticate(self, secret: str | None, address: str | None = None) -> Caller | None:
        if not secret:
            return None
        presented = digest_secret(secret)
        found: TokenRecord | None = None
        for record in self._records:
            # Compare against every record so timing says nothing about which one matched.
            if hmac.compare_digest(presented, record.digest):
                found = record
        if found is None:
            return None
        return Caller(token_id=found.token_id, scope=found.scope, command_profile=found.command_profile, address=address)


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            text = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


class BearerAuthMiddleware:
    """Requires a valid bearer token on the protected path prefixes; puts the Caller in request.state."""

    def __init__(self, app: ASGIApp, authenticator: TokenAuthenticator, protected_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.authenticator = authenticator
        self.protected = protected_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        secret = bearer_from_headers(scope.get("headers", []))
        client = scope.get("client")
        caller = self.authenticator.authenticate(secret, client[0] if client else None)
        if caller is not None:
            scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        elif any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.protected):
            await _unauthorized(send, "missing bearer token" if not secret else "invalid bearer token")
            return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, message: str) -> None:
    body = json.dumps({"error": ErrorInfo(code=ErrorCode.UNAUTHENTICATED, message=message).model_dump(mode="json")})
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Bearer realm="proxmox-mcp"'),
            (b"content-length", str(len(body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body.encode()})
