"""Admin endpoints of the freeze switch: `POST /api/admin/freeze` and `POST /api/admin/thaw` with
`{"reason": "..."}`, for admin-scope tokens. Not MCP tools on purpose: an assistant holding an admin token must
not be offered a way to thaw what an operator froze, and each tool costs every client context."""

from __future__ import annotations

import json
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from proxmox_mcp_runtime.control import FreezeStoreError
from proxmox_mcp_runtime.kv import KvError
from proxmox_mcp_runtime.redact import redact_text

from proxmox_mcp_gateway.access import AccessPolicy
from proxmox_mcp_gateway.audit import AuditError, AuditLog, utc_timestamp
from proxmox_mcp_gateway.auth import CALLER_STATE_KEY
from proxmox_mcp_gateway.freeze import GatewayFreeze
from proxmox_mcp_gateway.oauth.principal import OAuthPrincipal
from proxmox_mcp_gateway.rest import error_response

ADMIN_PREFIX = "/api/admin"


def _caller(request: Request) -> Caller | None:
    caller = request.scope.get("state", {}).get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


def _actor(caller: Caller) -> dict[str, Any]:
    actor: dict[str, Any] = {"token_id": caller.token_id, "client": caller.address, "transport": "rest"}
    if isinstance(caller, OAuthPrincipal):
        actor["oauth"] = caller.audit_identity()
    return actor


async def _reason(request: Request) -> str | ErrorInfo:
    try:
        body: object = json.loads(await request.body() or b"{}")
    except ValueError:
        return ErrorInfo(code=ErrorCode.INVALID_ARGUMENT, message="body is not valid JSON")
    fields = cast(dict[str, object], body) if isinstance(body, dict) else {}
    reason = fields.get("reason")
    if not isinstance(reason, str):
        return ErrorInfo(code=ErrorCode.INVALID_ARGUMENT, message='body must be {"reason": "<why>"}')
    return reason


def build_admin_router(freeze: GatewayFreeze, access: AccessPolicy, audit: AuditLog | None) -> APIRouter:
    router = APIRouter()

    async def refused(request: Request, caller: Caller | None, action: str, info: ErrorInfo) -> JSONResponse:
        if audit is not None:
            record: dict[str, Any] = {"ts": utc_timestamp(), "event": f"{action}_refused", "path": request.url.path,
                                      "result": info.code.value, "message": info.message}
            if caller is not None:
                record.update(_actor(caller))
            try:
                await audit.append(record)
            except AuditError:
                return error_response(ErrorInfo(code=ErrorCode.INTERNAL, message="the audit log could not be "
                                                "written; nothing was changed"))
        return error_response(info)

    async def change(request: Request, *, frozen: bool) -> JSONResponse:
        action = "freeze" if frozen else "thaw"
        caller = _caller(request)
        if caller is None:  # the auth middleware normally answers first
            return error_response(ErrorInfo(code=ErrorCode.UNAUTHENTICATED, message="missing bearer token"))
        scope = access.effective_scope(caller)
        if not scope.includes(Scope.ADMIN):
            mode = " (the server is in read-only mode)" if access.read_only else ""
            return await refused(request, caller, action, ErrorInfo(
                code=ErrorCode.PERMISSION_DENIED,
                message=f"{action} needs scope admin; this token has {scope.value}{mode}"))
        reason = await _reason(request)
        if isinstance(reason, ErrorInfo):
            return await refused(request, caller, action, reason)
        try:
            status = await freeze.change(frozen=frozen, by=caller.token_id, reason=redact_text(reason), via="rest",
                                         client=caller.address)
        except ValueError as exc:
            return await refused(request, caller, action, ErrorInfo(code=ErrorCode.INVALID_ARGUMENT,
                                                                    message=str(exc)))
        except FreezeStoreError as exc:
            return await refused(request, caller, action, ErrorInfo(code=ErrorCode.CONFLICT, message=str(exc),
                                                                    retryable=True))
        except KvError as exc:
            return await refused(request, caller, action, ErrorInfo(
                code=ErrorCode.UNAVAILABLE, retryable=True,
                message=f"the freeze switch could not be changed: {exc}; nothing was changed"))
        except AuditError:
            return error_response(ErrorInfo(
                code=ErrorCode.INTERNAL, message=f"the {action} was made, but its audit record could not be written "
                "(the gateway tries again); an operator must fix the audit log"))
        return JSONResponse({"frozen": frozen, "freeze": status.report()})

    @router.post(f"{ADMIN_PREFIX}/freeze")
    async def freeze_endpoint(request: Request) -> JSONResponse:
        return await change(request, frozen=True)

    @router.post(f"{ADMIN_PREFIX}/thaw")
    async def thaw_endpoint(request: Request) -> JSONResponse:
        return await change(request, frozen=False)

    return router
