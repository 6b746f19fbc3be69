"""The bearer-token store: a JSON file of token hashes and grants, written atomically with mode 0600.

A token is `pmcp_<id>_<secret>`: the id (12 hex digits) finds the entry without scanning, the secret is 32
random bytes (base64url). The file keeps only SHA-256(token). A plain hash is enough here, and a slow KDF
(scrypt, argon2) would buy nothing: those protect low-entropy passwords against guessing, while a 256-bit
random secret cannot be guessed from its hash at any speed. It also keeps each request's check in
microseconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Collection, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_runtime.networks import parse_networks
from proxmox_mcp_runtime.validation_errors import describe_validation_error
from pydantic import BaseModel, Field, ValidationError, field_validator

TOKEN_PREFIX = "pmcp_"
_TOKEN = re.compile(r"^pmcp_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
_DURATION = re.compile(r"^(?P<n>\d{1,6})(?P<unit>[smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DEFAULT_PROFILE = {Scope.READ: "readonly", Scope.OPERATE: "readonly", Scope.EXEC: "readonly", Scope.ADMIN: "admin"}
"""The command profile a token gets when none is chosen (DESIGN.md: readonly for exec, admin for admin)."""


class TokenStoreError(ValueError):
    """The store cannot be read or the request is invalid; the message says what to fix."""


class TokenEntry(BaseModel):
    id: str = Field(pattern=r"^[0-9a-f]{12}$")
    name: str
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<hex> of the whole token string")
    scope: Scope
    profile: str = "readonly"
    tools: list[str] | None = Field(default=None, description="Tool allowlist; None = every tool of the scope")
    cidrs: list[str] = Field(default_factory=list, description="Source networks; empty = any allowed address")
    created_at: datetime
    expires_at: datetime | None = None
    revoked: bool = False
    revoked_at: datetime | None = None

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(network) for network in parse_networks(value)]

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at

    def public(self) -> dict[str, object]:
        """What `token list` shows: everything but the hash."""
        return self.model_dump(mode="json", exclude={"hash"})


class TokenFile(BaseModel):
    version: int = 1
    tokens: list[TokenEntry] = Field(default_factory=list[TokenEntry])


@dataclass(frozen=True)
class NewToken:
    entry: TokenEntry
    secret: str
    """The whole token (pmcp_<id>_<secret>): shown once, never stored."""


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def token_id_of(presented: str) -> str | None:
    """The id part of a well-formed pmcp_ token, else None."""
    match = _TOKEN.match(presented)
    return match.group("id") if match else None


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `90m`, `2w`, `3600s`, or an ISO 8601 date/time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        seconds = int(match.group("n")) * _UNITS[match.group("unit")]
        if seconds <= 0:
            raise TokenStoreError(f"--expires {text!r}: the duration must be positive")
        return (now + timedelta(seconds=seconds)).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TokenStoreError(f"--expires {text!r}: give a duration like 30d, 12h, 90m or an ISO date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= now:
        raise TokenStoreError(f"--expires {text!r} is in the past")
    return moment


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "proxmox-mcp"


def live_name_taken(name: str) -> str:
    return f"a live token named {name!r} exists already; revoke it or pick another name"


@dataclass(frozen=True)
class TokenGrant:
    """What a new token may do, checked; the same rules for the token file and the JetStream bucket."""

    name: str
    scope: Scope
    profile: str
    tools: list[str] | None
    cidrs: list[str]
    expires_at: datetime | None

    @classmethod
    def checked(cls, *, name: str, scope: Scope, profile: str | None = None, tools: list[str] | None = None,
                cidrs: list[str] | None = None, expires_at: datetime | None = None,
                known_profiles: Collection[str] | None = None,
                known_tools: Collection[str] | None = None) -> TokenGrant:
        if not _NAME.match(name):
            raise TokenStoreError("--name: 1-64 characters, letters, digits, space, '.', '_', '@', '-'")
        if profile is not None and not scope.includes(Scope.EXEC):
            raise TokenStoreError("--profile only matters for exec and admin tokens (it governs execute_command)")
        profile = profile or DEFAULT_PROFILE[scope]
        if known_profiles is not None and profile not in known_profiles:
            raise TokenStoreError(f"--profile {profile!r} is unknown; known: {', '.join(sorted(known_profiles))}")
        if profile == "admin" and scope is not Scope.ADMIN:
            raise TokenStoreError("--profile admin needs --scope admin")
        unknown_tools = sorted(set(tools or ()) - set(known_tools)) if known_tools is not None else []
        if unknown_tools:
            raise TokenStoreError(f"--tools: unknown tool(s) {', '.join(unknown_tools)}")
        try:
            networks = [str(network) for network in parse_networks(cidrs or [])]
        except ValueError as exc:
            raise TokenStoreError(f"--cidr: {exc}") from None
        return cls(name=name, scope=scope, profile=profile, tools=sorted(set(tools)) if tools else None,
                   cidrs=networks, expires_at=expires_at)

    def mint(self, taken: Collection[str] = ()) -> NewToken:
        """A new token with an id not in taken; its secret exists only in the returned NewToken."""
        token_id = secrets.token_hex(6)
        while token_id in taken:
            token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        entry = TokenEntry(id=token_id, name=self.name, hash=hash_token(token), scope=self.scope,
                           profile=self.profile, tools=self.tools, cidrs=self.cidrs,
                           created_at=datetime.now(UTC).replace(microsecond=0), expires_at=self.expires_at)
        return NewToken(entry=entry, secret=token)


def revoked_copy(entry: TokenEntry) -> TokenEntry:
    return entry.model_copy(update={"revoked": True, "revoked_at": datetime.now(UTC).replace(microsecond=0)})


def unknown_token(token_id: str) -> str:
    return f"no token with id {token_id!r} (see `proxmox-mcp token list`)"


class TokenStore:
    """Reads and rewrites the token file. Writers take an exclusive lock; readers see whole files only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[TokenEntry]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TokenStoreError(f"cannot read the token store {self.path}: {exc.strerror}") from None
        try:
            return TokenFile.model_validate_json(raw).tokens
        except ValidationError as exc:
            problem = describe_validation_error(exc, whole=None)
            raise TokenStoreError(f"the token store {self.path} is damaged ({problem})") from None

    def create(self, *, name: str, scope: Scope, profile: str | None = None, tools: list[str] | None = None,
               cidrs: list[str] | None = None, expires_at: datetime | None = None,
               known_profiles: Collection[str] | None = None, known_tools: Collection[str] | None = None) -> NewToken:
        return self.add(TokenGrant.checked(name=name, scope=scope, profile=profile, tools=tools, cidrs=cidrs,
                                           expires_at=expires_at, known_profiles=known_profiles,
                                           known_tools=known_tools))

    def add(self, grant: TokenGrant) -> NewToken:
        """A new token for a checked grant; names are unique among live tokens."""
        with self._locked():
            entries = self.load()
            if any(e.name == grant.name and not e.revoked for e in entries):
                raise TokenStoreError(live_name_taken(grant.name))
            new = grant.mint(taken={e.id for e in entries})
            self._write([*entries, new.entry])
        return new

    def revoke(self, token_id: str) -> TokenEntry:
        with self._locked():
            entries = self.load()
            for index, entry in enumerate(entries):
                if entry.id == token_id:
                    if not entry.revoked:
                        entries[index] = revoked_copy(entry)
                        self._write(entries)
                    return entries[index]
        raise TokenStoreError(unknown_token(token_id))

    @contextlib.contextmanager
    def _locked(self) -> Generator[None, None, None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, entries: list[TokenEntry]) -> None:
        body = TokenFile(tokens=entries).model_dump_json(indent=1) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def dump_entries(entries: list[TokenEntry]) -> str:
    return json.dumps([e.public() for e in entries], indent=1)
