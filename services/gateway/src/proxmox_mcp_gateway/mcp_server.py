"""The MCP face of the gateway: tools, resources and their handlers on the SDK's low-level server."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure

from proxmox_mcp_gateway import __version__
from proxmox_mcp_gateway.auth import CALLER_STATE_KEY
from proxmox_mcp_gateway.calls import ToolExecutor
from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME, ToolSpec

log = logging.getLogger(__name__)

SERVER_NAME = "proxmox-mcp"
INSTRUCTIONS = (
    "Operate a Proxmox VE cluster. Prefer the typed tools (list_vms, vm_status, node_status, vm_action) over "
    "execute_command and proxmox_api. vm_action returns a task id; pass wait=true to follow it to the end."
)
_VM_URI = re.compile(r"^proxmox://vms/(\d{3,9})$")

_STATIC_RESOURCES = {
    "proxmox://terminal": (
        "terminal",
        "How to run commands on the Proxmox hosts with execute_command (policy, limits).",
        "execute_command runs one command per call on a Proxmox host over SSH. The command is parsed without a "
        "shell and checked against your token's command profile: no pipes, redirections, substitutions or "
        "variable expansion; dangerous programs are refused. Arguments: command (string), timeout (seconds, "
        "default 30, capped by the server), node (optional node name). Output is capped; truncated=true means "
        "it was cut.",
    ),
    "proxmox://api": (
        "api",
        "How to call the Proxmox VE API with proxmox_api.",
        "proxmox_api calls the Proxmox VE REST API below /api2/json: method (GET, POST, PUT, DELETE), path "
        "(e.g. /nodes, /cluster/resources, /nodes/pve1/qemu/100/config) and data (parameters). GET needs read "
        "scope; writes need admin scope. Answers are the 'data' member of Proxmox's reply.",
    ),
}


def tool_definition(spec: ToolSpec) -> types.Tool:
    a = spec.annotations
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=spec.input_schema(),
        output_schema=spec.output_schema(),
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=a.read_only,
            destructive_hint=a.destructive,
            idempotent_hint=a.idempotent,
            open_world_hint=a.open_world,
        ),
    )


def error_result(info: ErrorInfo) -> types.CallToolResult:
    """A tool error. rate_limited travels this way too (details.retry_after), not as HTTP 429 on /mcp: the
    official client turns a non-2xx POST into an opaque JSON-RPC 'Server returned an error response' and drops
    Retry-After, while a tool error reaches the model with the code and the wait, keeps the session, and works
    the same over stdio, which has no HTTP status at all."""
    structured: dict[str, Any] = {"code": info.code.value, "message": info.message, "retryable": info.retryable}
    if info.details:
        structured["details"] = info.details
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=info.as_text())], structured_content=structured, is_error=True,
    )


def build_mcp_server(executor: ToolExecutor, stdio_caller: Caller | None = None) -> Server[Any]:
    """stdio_caller is the identity used when no HTTP request carries one (the stdio transport)."""

    def transport_of(ctx: ServerRequestContext[Any, Any]) -> str:
        return "stdio" if ctx.request is None else "mcp-http"

    def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
        request = ctx.request
        state = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
        caller = state.get(CALLER_STATE_KEY) if isinstance(state, dict) else None
        if isinstance(caller, Caller):
            return caller
        if stdio_caller is not None and request is None:
            return stdio_caller
        raise MCPError(-32001, "unauthenticated")

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool_definition(s) for s in executor.visible_tools(caller_of(ctx))])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = caller_of(ctx)

        async def progress(value: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(value, total, message)

        try:
            result = await executor.call(params.name, params.arguments, caller, progress,
                                         transport=transport_of(ctx))
        except ServiceFailure as exc:
            return error_result(exc.info)
        except Exception as exc:  # never leak a traceback to the client
            log.error("tool call failed", extra={"tool": params.name, "error_type": type(exc).__name__})
            return error_result(ErrorInfo(code=ErrorCode.INTERNAL, message="the gateway failed on this call"))
        spec = TOOLS_BY_NAME[params.name]
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=spec.render(result))], structured_content=result
        )

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        caller_of(ctx)
        resources = [
            types.Resource(name="nodes", uri="proxmox://nodes", description="Status of every cluster node",
                           mime_type="application/json"),
            types.Resource(name="vms", uri="proxmox://vms", description="Every VM and container of the cluster",
                           mime_type="application/json"),
        ]
        resources += [
            types.Resource(name=name, uri=uri, description=desc, mime_type="text/plain")
            for uri, (name, desc, _text) in _STATIC_RESOURCES.items()
        ]
        return types.ListResourcesResult(resources=resources)

    async def list_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        caller_of(ctx)
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(name="vm", uri_template="proxmox://vms/{vmid}",
                                   description="Status of one VM or container", mime_type="application/json"),
        ])

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        caller = caller_of(ctx)
        uri = str(params.uri)
        if uri in _STATIC_RESOURCES:
            text = _STATIC_RESOURCES[uri][2]
            return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="text/plain",
                                                                                text=text)])
        try:
            transport = transport_of(ctx) + "-resource"
            if uri == "proxmox://nodes":
                data = await executor.call("node_status", {}, _read_only(caller), transport=transport)
            elif uri == "proxmox://vms":
                data = await executor.call("list_vms", {}, _read_only(caller), transport=transport)
            elif match := _VM_URI.match(uri):
                data = await executor.call("vm_status", {"vmid": int(match.group(1))}, _read_only(caller),
                                           transport=transport)
            else:
                raise MCPError(types.INVALID_PARAMS, f"unknown resource {uri}")
        except ServiceFailure as exc:
            raise MCPError(types.INTERNAL_ERROR if exc.code is ErrorCode.INTERNAL else types.INVALID_PARAMS,
                           exc.info.as_text()) from None
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(data, sort_keys=True))])

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


def _read_only(caller: Caller) -> Caller:
    """Resources are reads: run them at read scope whatever the token may do."""
    return caller if caller.scope is Scope.READ else caller.model_copy(update={"scope": Scope.READ})
