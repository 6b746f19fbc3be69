"""The original REST endpoints: GET /api/mcp, POST /api/mcp/tools/list, POST /api/mcp/tools/call."""

from __future__ import annotations

import json
import math
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure

from proxmox_mcp_gateway import __version__
from proxmox_mcp_gateway.auth import CALLER_STATE_KEY
from proxmox_mcp_gateway.calls import ToolExecutor
from proxmox_mcp_gateway.mcp_server import SERVER_NAME, tool_definition
from proxmox_mcp_gateway.replies import ReplyForm, reply_to_call
from proxmox_mcp_gateway.tracing import client_traceparent


def _caller(request: Request) -> Caller | None:
    caller = request.scope.get("state", {}).get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


def error_response(info: ErrorInfo) -> JSONResponse:
    headers: dict[str, str] = {}
    retry_after = info.details.get("retry_after")
    if info.code is ErrorCode.RATE_LIMITED and isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(
        status_code=info.http_status,
        content={
            "isError": True,
            "error": info.model_dump(mode="json"),
            "content": [{"type": "text", "text": info.as_text()}],
        },
        headers=headers or None,
    )


def _tool_response(result: dict[str, Any], text: str) -> JSONResponse:
    return JSONResponse({"isError": False, "structuredContent": result, "content": [{"type": "text", "text": text}]})


REST_REPLY: ReplyForm[JSONResponse] = ReplyForm(result=_tool_response, error=error_response)


def build_rest_router(executor: ToolExecutor) -> APIRouter:
    router = APIRouter()

    @router.get("/api/mcp")
    async def server_info(request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": SERVER_NAME,
            "version": __version__,
            "transports": {"streamable-http": "/mcp", "stdio": "proxmox-mcp stdio", "rest": "/api/mcp/tools/call"},
        }
        caller = _caller(request)
        if caller is not None:
            body["tools"] = [spec.name for spec in executor.visible_tools(caller)]
        return body

    @router.post("/api/mcp/tools/list")
    async def list_tools(request: Request) -> dict[str, Any]:
        caller = _require(request)
        tools = [tool_definition(spec).model_dump(mode="json", by_alias=True, exclude_none=True)
                 for spec in executor.visible_tools(caller)]
        return {"tools": tools}

    @router.post("/api/mcp/tools/call")
    async def call_tool(request: Request) -> JSONResponse:
        caller = _require(request)
        try:
            body: object = json.loads(await request.body() or b"{}")
        except ValueError:
            return error_response(ErrorInfo(code=ErrorCode.INVALID_ARGUMENT, message="body is not valid JSON"))
        fields = cast(dict[str, object], body) if isinstance(body, dict) else {}
        name = fields.get("name")
        if not isinstance(name, str):
            return error_response(ErrorInfo(
                code=ErrorCode.INVALID_ARGUMENT, message='body must be {"name": "<tool>", "arguments": {...}}'
            ))
        arguments: object = fields.get("arguments") or {}
        if not isinstance(arguments, dict):
            return error_response(ErrorInfo(code=ErrorCode.INVALID_ARGUMENT, message="arguments must be an object"))
        call = executor.call(name, cast(dict[str, Any], arguments), caller, transport="rest",
                             traceparent=client_traceparent(request.headers))
        return await reply_to_call(name, call, REST_REPLY)

    return router


def _require(request: Request) -> Caller:
    caller = _caller(request)
    if caller is None:  # the auth middleware normally answers first
        raise ServiceFailure(ErrorCode.UNAUTHENTICATED, "missing bearer token")
    return caller
