"""The one redactor of proxmox-mcp: secrets in tool results, error messages, audit records and log lines.

    from proxmox_mcp_runtime.redact import redact_text, redact_value, register_secret
    register_secret(settings.ssh_password)          # exact values known at start
    clean = redact_value(result)                     # dicts/lists/strings, recursively

What it finds: private keys (PEM and OpenSSH blocks, also cut off by an output cap), Proxmox API tokens
(`PVEAPIToken=USER@REALM!ID=SECRET`, UUID secrets after `=`), tickets (`PVE:user@realm:...`) and CSRF
tokens, passwords and other secrets in `key=value`, `key: value` and JSON form, JWTs, bearer/basic
credentials, our own `pmcp_` tokens, and every registered secret value. Each becomes `[REDACTED]`.
Redaction errs on the side of hiding: a UUID after `=` is hidden even when it was only an smbios uuid.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

REDACTED = "[REDACTED]"

MIN_SECRET_LENGTH = 4
"""Registered secrets shorter than this are ignored: hiding every 'a' would destroy all output."""

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
    re.S,
)
"""A key block; without its END line (output cut by a cap) everything after BEGIN goes."""
_PUTTY_KEY = re.compile(r"(Private-Lines:[ \t]*\d+[ \t]*\r?\n)(?:[A-Za-z0-9+/=]+\r?\n?)+")
_PVE_API_TOKEN = re.compile(r"(PVEAPIToken[ \t]*[=:][ \t]*[^\s=\"']+=)[^\s\"',;}]+", re.I)
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_AFTER_EQUALS = re.compile(r"(?<==)" + _UUID + r"\b")
_UUID_AS_VALUE = re.compile(r"(\bvalue\b[\"']?[ \t]*(?:[:=]|[│|])[ \t]*[\"']?)" + _UUID + r"\b", re.I)
_PVE_TICKET = re.compile(r"PVE[A-Z]*:[^\s:\"']+:[0-9A-Fa-f]{8}::[A-Za-z0-9+/=]+")
_PVE_COOKIE = re.compile(r"(PVEAuthCookie[ \t]*[=:][ \t]*)[^\s;\"',]+", re.I)
_CSRF = re.compile(r"(CSRFPreventionToken[\"']?[ \t]*[=:][ \t]*[\"']?)[0-9A-Fa-f]{8}:[A-Za-z0-9+/=]+", re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)([ \t]+)[A-Za-z0-9._~+/=-]{8,}", re.I)
_PMCP_TOKEN = re.compile(r"pmcp_[0-9a-f]{12}_[A-Za-z0-9_-]{16,}")
_KEY_VALUE = re.compile(
    r"(?P<q>[\"']?)(?P<key>[A-Za-z][A-Za-z0-9_.-]{1,63})(?P=q)(?P<sep>[ \t]*[=:][ \t]*)"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s,;&\"'}\]]+)"
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):.*\Z", re.S)
_SOURCE_LINE = re.compile(r"File \"[^\"]+\", line \d+(?:, in \S+)?")
_SOURCE_PATH = re.compile(r"(?:/[\w.@+-]+)+/[\w.@+-]+\.py[co]?\b|(?:/[\w.@+-]+)*/(?:site|dist)-packages(?:/[\w.@+-]+)*")

_HEX4 = r"[0-9A-Fa-f]{1,4}"
_IP_ADDRESS = re.compile(
    r"(?<![\w.:])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"                                    # IPv4
    r"|\[[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]"                                    # [IPv6]
    rf"|(?<![\w:])(?:{_HEX4}:){{7}}{_HEX4}(?![\w:])"                                        # full IPv6
    rf"|(?<![\w:])(?:{_HEX4}(?::{_HEX4})*)?::(?:{_HEX4}(?::{_HEX4})*)?(?![\w:])"           # IPv6 with ::
)
"""IP addresses in text; times (12:30:45) and certificate fingerprints (32 colon groups) are not matched."""
HIDDEN_HOST = "[host]"
_HOST_PATH = re.compile(
    r"(?<![\w./-])/(?:etc|var|home|root|usr|opt|tmp|run|srv|mnt|media|lib|lib64|bin|sbin|boot|proc|sys|dev)"
    r"(?:/[^\s'\"`,;:()\[\]{}<>]*)?"
)
"""Absolute file system paths on a host (API paths like /nodes/pve1/qemu do not start with these)."""
HIDDEN_PATH = "[path]"

_MAY_HOLD_A_SECRET = re.compile(r"[:=|\u2502]|PRIVATE KEY|pmcp_|eyJ|bearer|basic", re.I)
"""Every pattern above needs one of these in the text; a string with none (most values: "running", "pve1",
"qemu") can only hold a registered secret, so the other patterns are skipped for it."""

_SENSITIVE_WORDS = ("password", "passwd", "passphrase", "secret", "apikey", "api_key", "private_key", "privkey",
                    "ticket", "csrfpreventiontoken", "authorization", "cookie", "token_value", "tokenvalue",
                    "credential")
_SENSITIVE_EXACT = frozenset({"token", "pwd", "pass", "pw", "psk", "auth", "bearer", "key_data"})
_SENSITIVE_SUFFIXES = ("_token", "_pwd", "_pass", "_psk", "-token", ".token")
_SAFE_KEYS = frozenset({"token_id", "tokenid", "token_name", "token_scope", "token_file", "tokens_file",
                        "password_file", "secret_file", "ticket_lifetime"})


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True for names whose values are secrets: password, ssh_key_passphrase, PMCP_TOKEN, api_token, ..."""
    name = key.strip("\"'").lower().replace("-", "_").replace(".", "_")
    if name in _SAFE_KEYS or name.endswith("_file") or name.endswith("_path"):
        return False
    if name in _SENSITIVE_EXACT or name.endswith(_SENSITIVE_SUFFIXES):
        return True
    return any(word in name for word in _SENSITIVE_WORDS)


class Redactor:
    """Pattern-based redaction plus exact secret values registered at start (thread-safe)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._secret_pattern: re.Pattern[str] | None = None
        self._hosts: set[str] = set()
        self._host_pattern: re.Pattern[str] | None = None
        self.register_secrets(secrets)

    def register_secret(self, value: str | None) -> None:
        """Hide this exact value (and its whitespace-trimmed form) wherever it shows up."""
        self.register_secrets([value] if value else [])

    def register_secrets(self, values: Iterable[str | None]) -> None:
        with self._lock:
            added = False
            for value in values:
                for form in {value, value.strip()} if value else ():
                    if len(form) >= MIN_SECRET_LENGTH and form not in self._secrets:
                        self._secrets.add(form)
                        added = True
            if added:
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def register_hosts(self, values: Iterable[str | None], keep: Iterable[str] = ()) -> None:
        """Addresses of the Proxmox hosts, hidden from error messages for callers below admin. Values also in
        `keep` (node names the tools use, which a host may share with its DNS name) stay visible."""
        kept = set(keep)
        with self._lock:
            self._hosts.update(v.strip() for v in values if v and v.strip() and v.strip() not in kept)
            ordered = sorted(self._hosts, key=len, reverse=True)
            self._host_pattern = (re.compile(r"(?<![\w.-])(?:" + "|".join(re.escape(h) for h in ordered)
                                             + r")(?![\w-]|\.\w)") if ordered else None)

    def hide_internals(self, text: str) -> str:
        """Registered host addresses and every IP address become [host], host file paths [path]."""
        if self._host_pattern is not None:
            text = self._host_pattern.sub(HIDDEN_HOST, text)
        return _HOST_PATH.sub(HIDDEN_PATH, _IP_ADDRESS.sub(HIDDEN_HOST, text))

    def redact_text(self, text: str) -> str:
        if not text:
            return text
        pattern = self._secret_pattern
        if _MAY_HOLD_A_SECRET.search(text) is None:
            return text if pattern is None else pattern.sub(REDACTED, text)
        text = _PRIVATE_KEY.sub(_key_block, text)
        text = _PUTTY_KEY.sub(lambda m: m.group(1) + REDACTED + "\n", text)
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _PMCP_TOKEN.sub(REDACTED, text)
        text = _PVE_API_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
        text = _PVE_TICKET.sub(REDACTED, text)
        text = _PVE_COOKIE.sub(lambda m: m.group(1) + REDACTED, text)
        text = _CSRF.sub(lambda m: m.group(1) + REDACTED, text)
        text = _UUID_AFTER_EQUALS.sub(REDACTED, text)
        text = _UUID_AS_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
        text = _JWT.sub(REDACTED, text)
        text = _AUTH_SCHEME.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        return _KEY_VALUE.sub(_key_value, text)

    def redact_value(self, value: Any) -> Any:
        """A copy of value with every string redacted; values under sensitive keys hidden entirely."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in cast(Mapping[Any, Any], value).items():
                if isinstance(key, str) and is_sensitive_key(key) and item not in (None, "", [], {}):
                    out[key] = REDACTED if not isinstance(item, bool | int | float) else item
                else:
                    out[key] = self.redact_value(item)
            return out
        if isinstance(value, list | tuple):
            return [self.redact_value(item) for item in cast(Iterable[Any], value)]
        return value

    def sanitize_error(self, message: str, *, hide_internals: bool = False) -> str:
        """An error message fit for a client: redacted, no traceback, no source file paths, and with
        hide_internals (callers below admin) no host addresses or file paths."""
        message = _TRACEBACK.sub("", message)
        message = _SOURCE_LINE.sub("", message)
        message = _SOURCE_PATH.sub(HIDDEN_PATH, message)
        if hide_internals:
            message = self.hide_internals(message)
        return self.redact_text(message).strip() or "error details withheld"


def _key_block(match: re.Match[str]) -> str:
    # No BEGIN marker in the replacement: redacting twice must not take it for a key cut off by a cap.
    return REDACTED


def _key_value(match: re.Match[str]) -> str:
    if not is_sensitive_key(match.group("key")) or REDACTED[:-1] in match.group("value"):
        return match.group(0)
    value = match.group("value")
    quote = value[0] if value[0] in "\"'" and len(value) >= 2 else ""
    return f"{match.group('q')}{match.group('key')}{match.group('q')}{match.group('sep')}{quote}{REDACTED}{quote}"


DEFAULT_REDACTOR = Redactor()
"""The process-wide redactor: every service registers its configured secrets here at start."""


def redact_text(text: str) -> str:
    return DEFAULT_REDACTOR.redact_text(text)


def redact_value(value: Any) -> Any:
    return DEFAULT_REDACTOR.redact_value(value)


def register_secret(value: str | None) -> None:
    DEFAULT_REDACTOR.register_secret(value)


def register_secrets(values: Iterable[str | None]) -> None:
    DEFAULT_REDACTOR.register_secrets(values)


def sanitize_error(message: str, *, hide_internals: bool = False) -> str:
    return DEFAULT_REDACTOR.sanitize_error(message, hide_internals=hide_internals)


def register_hosts(values: Iterable[str | None], keep: Iterable[str] = ()) -> None:
    DEFAULT_REDACTOR.register_hosts(values, keep)


def secret_values(value: Any) -> list[str]:
    """Every SecretStr inside a pydantic model / mapping / list (e.g. a ProxmoxConfig), in the clear."""
    from pydantic import BaseModel, SecretStr

    found: list[str] = []
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += secret_values(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in cast(Mapping[Any, Any], value).values():
            found += secret_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in cast(Iterable[Any], value):
            found += secret_values(item)
    return found


def register_model_secrets(model: Any) -> None:
    """Register every SecretStr of a settings/config model (call once at start)."""
    register_secrets(secret_values(model))


def register_env_secrets(environ: Mapping[str, str]) -> None:
    """Register the values of environment variables whose names say they are secrets (SSH_PASSWORD,
    PROXMOX_TOKEN_VALUE, PMCP_TOKEN, ...)."""
    register_secrets(value for key, value in environ.items()
                     if is_sensitive_key(key) and value.strip().lower() not in _NOT_SECRETS and not value.isdigit())


_NOT_SECRETS = frozenset({"true", "false", "yes", "no", "none", "null", "on", "off", "auto", "required"})
