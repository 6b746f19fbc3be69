"""The policy of proxmox_api: which scope a method+path needs, and parameters checked against the schema subset.

Checked before any request leaves the gateway. Rules match the URL-decoded, normalized path; the path sent
on is that same canonical form, so what was checked is what runs.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.pve_schema import UnknownEndpoint, match_path, validate_parameters

ADMIN_ONLY_PATHS: tuple[str, ...] = (
    # Users, tokens, ACLs, tickets, TFA, realms: every method, GET included.
    "/access",
    "/access/*",
    # Shells and consoles on nodes and guests, and the batch executor.
    "/nodes/*/execute",
    "/nodes/*/termproxy",
    "/nodes/*/vncshell",
    "/nodes/*/spiceshell",
    "/nodes/*/vncwebsocket",
    "/nodes/*/qemu/*/termproxy",
    "/nodes/*/qemu/*/vncproxy",
    "/nodes/*/qemu/*/spiceproxy",
    "/nodes/*/qemu/*/vncwebsocket",
    "/nodes/*/qemu/*/monitor",
    "/nodes/*/qemu/*/sendkey",
    "/nodes/*/lxc/*/termproxy",
    "/nodes/*/lxc/*/vncproxy",
    "/nodes/*/lxc/*/spiceproxy",
    "/nodes/*/lxc/*/vncwebsocket",
    # The guest agent reads and writes files and runs programs inside guests.
    "/nodes/*/qemu/*/agent",
    "/nodes/*/qemu/*/agent/*",
    # Outbound connections with caller-chosen targets and credentials (SSRF), and backup file downloads.
    "/nodes/*/scan",
    "/nodes/*/scan/*",
    "/nodes/*/query-url-metadata",
    "/nodes/*/query-oci-repo-tags",
    "/nodes/*/storage/*/file-restore/*",
    "/nodes/*/storage/*/download-url",
    "/nodes/*/storage/*/oci-registry-pull",
    # Cluster membership and corosync.
    "/cluster/config",
    "/cluster/config/*",
    "/nodes/*/certificates/*",
)
"""Glob patterns (`*` spans segments) of paths that need admin scope for every method."""

DESTRUCTIVE_WRITES: tuple[tuple[str, str], ...] = (
    ("POST", "/nodes/*/qemu/*/status/stop"),
    ("POST", "/nodes/*/qemu/*/status/reset"),
    ("POST", "/nodes/*/qemu/*/status/shutdown"),
    ("POST", "/nodes/*/qemu/*/status/reboot"),
    ("POST", "/nodes/*/lxc/*/status/stop"),
    ("POST", "/nodes/*/lxc/*/status/shutdown"),
    ("POST", "/nodes/*/lxc/*/status/reboot"),
    ("POST", "/nodes/*/qemu/*/snapshot/*/rollback"),
    ("POST", "/nodes/*/lxc/*/snapshot/*/rollback"),
    ("POST", "/nodes/*/status"),
    ("POST", "/nodes/*/stopall"),
)
"""(method, glob) of writes that do what a destructive typed tool does (stop/reset/shutdown/reboot a guest, roll
back a snapshot) or more (reboot or shut down a node, stop every guest): they need the same confirmation. Every
DELETE does too."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.:@=]+$")


@dataclass(frozen=True)
class ApiDecision:
    required_scope: Scope
    path: str
    """The canonical path to send (decoded, no empty segments, no trailing slash)."""
    template: str
    """The schema template it matched, e.g. /nodes/{node}/qemu/{vmid}/config."""
    reason: str


def canonical_path(raw: str) -> str:
    """Decode once and normalize; refuse what could mean two different things to two parsers."""
    decoded = unquote(raw, errors="strict") if "%" in raw else raw
    segments = [s for s in decoded.split("/") if s]
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT.match(segment):
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT,
                                 f"proxmox_api: path segment {segment!r} is not allowed (plain names only; "
                                 "no '.', '..', encoded slashes or special characters)")
    return "/" + "/".join(segments)


def required_scope(method: str, path: str) -> tuple[Scope, str]:
    lowered = path.lower()
    for pattern in ADMIN_ONLY_PATHS:
        if fnmatch.fnmatchcase(lowered, pattern):
            return Scope.ADMIN, f"{pattern} is admin-only for every method"
    if method != "GET":
        return Scope.ADMIN, f"{method} changes the cluster: admin only"
    return Scope.READ, "GET of a non-sensitive path"


def destructive_api_call(method: str, path: str) -> bool:
    """Whether a proxmox_api call (canonical path) needs the confirmation destructive tools need."""
    if method == "DELETE":
        return True
    lowered = path.lower()
    return any(method == m and fnmatch.fnmatchcase(lowered, pattern) for m, pattern in DESTRUCTIVE_WRITES)


def check_api_call(method: str, raw_path: str, data: dict[str, Any] | None, caller_scope: Scope) -> ApiDecision:
    """Refuse (permission_denied, not_found, invalid_argument) or return the decision with the canonical path.

    The scope is checked first: a caller who may not touch a path learns nothing about its parameters.
    """
    path = canonical_path(raw_path)
    scope, reason = required_scope(method, path)
    if not caller_scope.includes(scope):
        raise ServiceFailure(ErrorCode.PERMISSION_DENIED, f"proxmox_api {method} {path} needs scope {scope.value} "
                             f"({reason}); this token has {caller_scope.value}")
    matched = match_path(path)
    try:
        errors = validate_parameters(method, path, data or {})
    except UnknownEndpoint:
        raise ServiceFailure(ErrorCode.NOT_FOUND,
                             f"proxmox_api: {method} {path} is not an endpoint of the Proxmox API schema this "
                             "server knows; check the path (see proxmox://api)") from None
    if errors:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(errors.items()))
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"proxmox_api: invalid parameter(s) for {method} {path}: "
                             f"{listed}", details={"errors": errors})
    return ApiDecision(required_scope=scope, path=path, template=matched[0] if matched else path, reason=reason)
