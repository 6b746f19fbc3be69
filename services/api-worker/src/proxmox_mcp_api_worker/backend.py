"""What every way of reaching the Proxmox API offers (direct HTTPS, HTTPS through an SSH tunnel, pvesh over SSH).

A backend takes a path *below* /api2/json and flat parameters, and returns the `data` member of the
answer, or raises ServiceFailure with our error codes (see errors.py). Everything above it (operations,
handlers) is the same for all modes, so the same tool call gives the same result in each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol, cast
from urllib.parse import unquote

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

Method = Literal["GET", "POST", "PUT", "DELETE"]
Params = Mapping[str, Any]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_UNQUOTE_ROUNDS = 4


class PveBackend(Protocol):
    """One cluster's connection to the Proxmox API."""

    @property
    def mode(self) -> str:
        """direct | ssh-tunnel | pvesh"""
        ...

    @property
    def insecure_tls(self) -> bool:
        """True when TLS is not verified at all (PROXMOX_VERIFY_SSL=false without a pin or CA file)."""
        ...

    @property
    def waits_for_tasks(self) -> bool:
        """True when a task-starting request returns only after the task ended (pvesh): such requests get the
        call's whole remaining time instead of the per-request ceiling."""
        ...

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        """`data` of the answer to METHOD /api2/json{path}. `path` must come from normalize_api_path;
        `params` from encode_params. Raises ServiceFailure (never a library exception)."""
        ...

    async def certificate(self, timeout: float) -> bytes | None:
        """The API's TLS certificate (DER) as served right now, for expiry metrics; None when not applicable."""
        ...

    async def close(self) -> None: ...


def normalize_api_path(path: str) -> str:
    """A path below /api2/json: one leading slash, no empty, '.' or '..' segments (also not percent-encoded,
    also not double-encoded), no control characters or backslashes, no query or fragment. "/" → "".

    Percent-escapes are kept as given (a volume id like local%3Aiso%2Fx.iso must reach Proxmox encoded);
    only their decoded form is checked, so nothing can climb out of /api2/json on any server or proxy."""
    if not path.startswith("/"):
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "path must start with '/', e.g. /nodes")
    if "?" in path or "#" in path:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "path must not contain '?' or '#': pass parameters in data")
    segments = [segment for segment in path.split("/") if segment]
    for segment in segments:
        decoded = _fully_unquoted(segment)
        if _CONTROL.search(decoded) or "\\" in decoded:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "path contains control characters or backslashes")
        if any(part in {".", ".."} for part in decoded.split("/")):
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "path must not contain '.' or '..' segments")
    normalized = "/" + "/".join(segments) if segments else ""
    if normalized.lower().startswith("/api2/"):
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "give the path below /api2/json, e.g. /nodes")
    return normalized


def _fully_unquoted(segment: str) -> str:
    current = segment
    for _ in range(_MAX_UNQUOTE_ROUNDS):
        decoded = unquote(current)
        if decoded == current:
            return decoded
        current = decoded
    raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "path is percent-encoded too many times")


ParamValue = str | int | float | list[str | int | float]


def encode_params(data: Mapping[Any, Any] | None) -> dict[str, ParamValue]:
    """Parameters the way Proxmox reads them: booleans as 0/1, None dropped, lists as repeated keys;
    nested objects are refused (the API takes flat key/value parameters, property strings are text)."""
    encoded: dict[str, ParamValue] = {}
    for key, value in (data or {}).items():
        if not isinstance(key, str) or not key or _CONTROL.search(key):
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"invalid parameter name {key!r}")
        if value is None:
            continue
        if isinstance(value, list | tuple):
            encoded[key] = [_scalar(key, item) for item in cast("list[Any] | tuple[Any, ...]", value)]
        else:
            encoded[key] = _scalar(key, value)
    return encoded


def _scalar(key: str, value: Any) -> str | int | float:
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int | float | str):
        return value
    raise ServiceFailure(
        ErrorCode.INVALID_ARGUMENT,
        f"parameter {key!r} must be a string, number or boolean (Proxmox property strings are text, "
        "e.g. 'virtio,bridge=vmbr0')",
    )
