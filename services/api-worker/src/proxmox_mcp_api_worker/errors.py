"""Proxmox API failures → our error codes. Shared by every backend: HTTPS answers and pvesh output both become
a PveHttpError first, so the same failure gives the same code in every mode."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

MAX_MESSAGE = 500

# Real Proxmox answers 500 for a missing guest ("Configuration file 'nodes/pve1/qemu-server/999.conf' does not
# exist"), an unknown task, storage or snapshot ("no such ...").
# An unknown node in the path: "hostname lookup 'pve9' failed - failed to get address info for: pve9: ...".
_NOT_FOUND = re.compile(
    r"does not exist|\bno such\b|not found|unknown (vm|ct|task|storage|node)|^hostname lookup '[^']*' failed",
    re.IGNORECASE,
)
# State errors: "CT 100 already running", "VM 100 not running", "VM is locked (backup)", "can't lock file",
# "snapshot name 'x' already used".
_CONFLICT = re.compile(
    r"already running|not running|already stopped|is locked|\blocked\b|can't lock|already exists|"
    r"is a template|already suspended|not suspended|is running|already used",
    re.IGNORECASE,
)
# pveproxy's own answers when it cannot forward a request to the node that owns the resource.
_PROXY_UNREACHABLE = {595, 596, 599}


@dataclass
class PveHttpError(Exception):
    """An error answer of the Proxmox API (or the pvesh equivalent)."""

    status: int
    message: str
    """Proxmox's message: the HTTP reason phrase (real PVE puts the error text there), else the body's."""
    errors: dict[str, Any] = field(default_factory=dict[str, Any])
    """Per-parameter reasons of a 400 'Parameter verification failed.'"""

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def clean_message(text: str) -> str:
    """One line, no trailing noise, bounded: messages travel in NATS headers and MCP text."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def to_failure(error: PveHttpError, *, method: str, path: str) -> ServiceFailure:
    status = error.status
    message = clean_message(error.message) or f"HTTP {status}"
    details: dict[str, Any] = {"status": status}
    if status == 400:
        reasons = {str(k): clean_message(str(v)) for k, v in (error.errors or {}).items()}
        details["errors"] = reasons
        listing = "; ".join(f"{name}: {reason}" for name, reason in sorted(reasons.items()))
        # Proxmox reports an unknown task as a bad parameter: {"upid": "no such task"}.
        missing = all(_NOT_FOUND.search(r) for r in reasons.values()) if reasons else _NOT_FOUND.search(message)
        if missing:
            return ServiceFailure(ErrorCode.NOT_FOUND, listing or message, details=details)
        text = f"Proxmox rejected the parameters of {method} {path}: {message}"
        return ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{text} ({listing})" if listing else text, details=details)
    if status == 401:
        return ServiceFailure(
            ErrorCode.UPSTREAM_ERROR,
            "Proxmox rejected the worker's credentials (401); check the API token or password the api-worker uses",
            details=details,
        )
    if status == 403:
        return ServiceFailure(ErrorCode.PERMISSION_DENIED, f"Proxmox refused {method} {path}: {message}",
                              details=details)
    if status == 404:
        return ServiceFailure(ErrorCode.NOT_FOUND, f"{method} {path}: {message}", details=details)
    if status == 501:
        return ServiceFailure(ErrorCode.NOT_FOUND, f"no such API path or method: {method} {path} ({message})",
                              details=details)
    if status in _PROXY_UNREACHABLE:
        return ServiceFailure(ErrorCode.UNAVAILABLE, f"Proxmox could not forward {method} {path} to the node "
                              f"({message})", retryable=method == "GET", details=details)
    if status == 500 and _NOT_FOUND.search(message):
        return ServiceFailure(ErrorCode.NOT_FOUND, message, details=details)
    if status == 500 and _CONFLICT.search(message):
        return ServiceFailure(ErrorCode.CONFLICT, message, details=details)
    return ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox failed {method} {path} (HTTP {status}): {message}",
                          retryable=method == "GET" and status >= 502, details=details)
