"""Builds the gateway's security parts from its settings: access policy, limits, audit, edge policy, secrets."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_runtime.command_policy import PROFILES, ProfileConfigError, ProfileSpec, load_configured_profiles
from proxmox_mcp_runtime.networks import parse_networks
from proxmox_mcp_runtime.redact import register_env_secrets, register_secret
from starlette.types import Scope

from proxmox_mcp_gateway.access import AccessPolicy
from proxmox_mcp_gateway.audit import AuditError, AuditLog, AuditReplica, utc_timestamp
from proxmox_mcp_gateway.audit_chain_writer import ChainWriter
from proxmox_mcp_gateway.audit_key import AuditKeyError, load_or_create_audit_key
from proxmox_mcp_gateway.calls import CallObserver, CallSecurity
from proxmox_mcp_gateway.confirm import ConfirmPolicy
from proxmox_mcp_gateway.edge import EdgePolicy, RejectHook
from proxmox_mcp_gateway.limits import CallLimiter, Limiter, RateSpec, parse_tool_rates
from proxmox_mcp_gateway.oauth.resource_server import OAuthConfigError, OAuthResourceServer, config_from
from proxmox_mcp_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class SecurityConfigError(ValueError):
    """A security setting cannot be used; the message says which and why."""


def load_command_profiles(settings: GatewaySettings) -> dict[str, ProfileSpec]:
    try:
        return load_configured_profiles(settings.command_profiles)
    except ProfileConfigError as exc:
        raise SecurityConfigError(str(exc)) from None


def build_security(settings: GatewaySettings, observer: CallObserver | None = None, *,
                   shared_limiter: Limiter | None = None, audit_replica: AuditReplica | None = None) -> CallSecurity:
    """shared_limiter / audit_replica: the JetStream parts when several replicas share state (state_wiring)."""
    limiter = shared_limiter or CallLimiter(per_token=RateSpec.parse(settings.rate_limit),
                                            per_tool=parse_tool_rates(settings.tool_rate_limits),
                                            max_concurrent=settings.max_concurrent_per_token)
    audit = AuditLog(settings.audit_path(), max_bytes=settings.audit_max_bytes, backups=settings.audit_backups,
                     replica=audit_replica, chain=audit_chain(settings))
    access = AccessPolicy(read_only=settings.read_only, extra_profiles=load_command_profiles(settings),
                          exposed=settings.exposed_tools())
    if settings.read_only:
        log.warning("read-only mode: only read-scope tools are offered to any caller")
    if not settings.confirm_destructive:
        log.warning("destructive calls run without confirmation (PMCP_CONFIRM_DESTRUCTIVE=false)")
    confirm = ConfirmPolicy(enabled=settings.confirm_destructive, timeout=settings.confirm_timeout)
    return CallSecurity(access=access, limiter=limiter, audit=audit, confirm=confirm, observer=observer)


def audit_chain(settings: GatewaySettings) -> ChainWriter:
    """The audit chain's writer, with the key from PMCP_AUDIT_KEY_FILE (generated there at the first start)."""
    try:
        key = load_or_create_audit_key(settings.audit_key_path())
    except AuditKeyError as exc:
        raise SecurityConfigError(f"PMCP_AUDIT_KEY_FILE: {exc}") from None
    register_secret(key.secret.decode(errors="replace"))
    return ChainWriter(settings.audit_path(), key, backups=settings.audit_backups,
                       anchor_path=settings.audit_anchor_path(), anchor_interval=settings.audit_anchor_interval,
                       anchor_every=settings.audit_anchor_records)


def build_oauth(settings: GatewaySettings) -> OAuthResourceServer | None:
    """The OAuth resource server, when PMCP_OAUTH_ISSUER is set."""
    try:
        config = config_from(settings, known_profiles=set(PROFILES) | set(load_command_profiles(settings)))
    except (OAuthConfigError, ValueError) as exc:
        raise SecurityConfigError(str(exc)) from None
    if config is None:
        return None
    log.info("accepting OAuth access tokens", extra={"issuer": config.issuer, "resource": config.resource})
    return OAuthResourceServer.from_config(config)


def request_state_keys(settings: GatewaySettings) -> list[bytes] | None:
    """The key sealing 2026-era input_required state, when configured (replicas must share one)."""
    if settings.request_state_key_file is None:
        return None
    try:
        key = settings.request_state_key_file.read_bytes().strip()
    except OSError as exc:
        raise SecurityConfigError(f"PMCP_REQUEST_STATE_KEY_FILE: cannot read it ({type(exc).__name__})") from None
    if len(key) < 32:
        raise SecurityConfigError("PMCP_REQUEST_STATE_KEY_FILE: the key must have at least 32 bytes")
    register_secret(key.decode(errors="replace"))
    return [key]


def edge_policy(settings: GatewaySettings, transport: TransportSecuritySettings) -> EdgePolicy:
    return EdgePolicy(allowed_networks=parse_networks(settings.allowed_cidrs),
                      trusted_proxies=parse_networks(settings.trusted_proxies),
                      allowed_hosts=tuple(transport.allowed_hosts), allowed_origins=tuple(transport.allowed_origins))


def register_startup_secrets(settings: GatewaySettings) -> None:
    """Whatever secret this process knows is hidden from every result, error and log line it produces."""
    register_env_secrets(os.environ)
    with contextlib.suppress(OSError):  # an unreadable token file is reported where it is used
        register_secret(settings.bearer_secret())


def audit_rejections(audit: AuditLog | None, on_refused: Callable[[str], None] | None = None) -> RejectHook | None:
    """The audit record of a request the edge or auth middleware refused (401/403/413/421); on_refused gets the
    refusal's reason (or code) for metrics."""
    if audit is None and on_refused is None:
        return None

    async def record(scope: Scope, info: ErrorInfo, address: str | None, token_id: str | None) -> None:
        if on_refused is not None:
            with contextlib.suppress(Exception):
                on_refused(str(info.details.get("reason") or info.code.value))
        if audit is None:
            return
        entry: dict[str, Any] = {
            "ts": utc_timestamp(), "event": "http_rejected", "token_id": token_id, "client": address,
            "transport": "http", "method": scope.get("method"), "path": scope.get("path"),
            "result": info.code.value, "message": info.message,
        }
        try:
            await audit.append(entry)
        except AuditError:
            log.error("could not audit a refused request", extra={"path": scope.get("path")})

    return record
