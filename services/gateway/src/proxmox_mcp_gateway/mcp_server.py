"""The MCP face of the gateway: tools, resources, prompts and their handlers on the SDK's low-level server."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.caching import CacheableMethod, CacheHint
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.json_values import is_object

from proxmox_mcp_gateway import __version__, prompts, resources
from proxmox_mcp_gateway.auth import CALLER_STATE_KEY
from proxmox_mcp_gateway.calls import ToolExecutor
from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME, ToolSpec
from proxmox_mcp_gateway.conformance_fixtures import ConformanceFixtures
from proxmox_mcp_gateway.mcp_confirm import channel_for, input_required, request_state_boundary
from proxmox_mcp_gateway.mcp_results import error_result, tool_result
from proxmox_mcp_gateway.mcp_tasks import TasksExtension, client_takes_tasks, created_task, install
from proxmox_mcp_gateway.pagination import refuse_unknown_cursors
from proxmox_mcp_gateway.replies import ReplyForm, reply_to_call
from proxmox_mcp_gateway.tracing import client_traceparent

SERVER_NAME = "proxmox-mcp"
INSTRUCTIONS = (
    "Operate Proxmox VE clusters. Prefer the typed tools (list_vms, vm_status, node_status, vm_action, "
    "list_tasks, list_storage, ...) over execute_command and proxmox_api. Every tool takes an optional cluster "
    "(see proxmox://clusters). Tools that start a Proxmox task return its UPID; pass wait=true to follow it to "
    "the end (clients of the MCP tasks extension get a task), or call wait_task later. Destructive calls need the "
    "user's confirmation: the server asks through the client when it can, otherwise ask the user yourself and "
    "pass confirm=true. Give every change an idempotency_key (e.g. a UUID) and reuse it when you retry after an "
    "error or a lost connection: the change is then never made twice."
)

_DEFINITIONS: dict[str, types.Tool] = {}


def tool_definition(spec: ToolSpec) -> types.Tool:
    """The MCP definition of a tool, built once per tool name (specs are static)."""
    cached = _DEFINITIONS.get(spec.name)
    if cached is None:
        cached = _DEFINITIONS[spec.name] = _build_definition(spec)
    return cached


def _build_definition(spec: ToolSpec) -> types.Tool:
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


MCP_REPLY: ReplyForm[types.CallToolResult | types.InputRequiredResult | dict[str, Any]] = ReplyForm(
    result=tool_result, error=error_result, pending=input_required,
    task=lambda ticket: created_task(ticket.record))

LIST_HINTS: dict[CacheableMethod, CacheHint] = {
    "server/discover": CacheHint(ttl_ms=300_000, scope="public"),
    "tools/list": CacheHint(ttl_ms=60_000, scope="private"),
    "resources/list": CacheHint(ttl_ms=300_000, scope="public"),
    "resources/templates/list": CacheHint(ttl_ms=300_000, scope="public"),
    "prompts/list": CacheHint(ttl_ms=300_000, scope="public"),
}
"""Cache hints (2026 era). tools/list is private: each token sees the tools its scope and allowlist allow. The
other lists are the same for every caller (the deployment's clusters, templates and prompts): public. Resource
reads carry their own (resources.freshness)."""


def build_mcp_server(executor: ToolExecutor, stdio_caller: Caller | None = None,
                     request_state_keys: list[bytes] | None = None,
                     fixtures: ConformanceFixtures | None = None) -> Server[Any]:
    """stdio_caller is the identity used when no HTTP request carries one (the stdio transport). fixtures: the
    conformance suite's test-only tools (PMCP_CONFORMANCE_FIXTURES)."""

    def transport_of(ctx: ServerRequestContext[Any, Any]) -> str:
        return "stdio" if ctx.request is None else "mcp-http"

    def known_caller(ctx: ServerRequestContext[Any, Any]) -> Caller | None:
        request = ctx.request
        state: object = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
        caller = state.get(CALLER_STATE_KEY) if is_object(state) else None
        if isinstance(caller, Caller):
            return caller
        if stdio_caller is not None and request is None:
            return stdio_caller
        return None

    def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
        caller = known_caller(ctx)
        if caller is None:
            raise MCPError(-32001, "unauthenticated")
        return caller

    def principal_of(ctx: ServerRequestContext[Any, Any]) -> str | None:
        caller = known_caller(ctx)
        return caller.token_id if caller is not None else None

    def input_schema(name: str) -> dict[str, Any] | None:
        """For the SDK's 2026-era header checks, so they need no tools/list round of their own."""
        spec = TOOLS_BY_NAME.get(name)
        if spec is not None:
            return spec.input_schema()
        return fixtures.input_schema(name) if fixtures is not None else None

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = [tool_definition(s) for s in executor.visible_tools(caller_of(ctx))]
        return types.ListToolsResult(tools=tools + (fixtures.tools() if fixtures is not None else []))

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> HandlerResult:
        caller = caller_of(ctx)
        as_task = client_takes_tasks(ctx)
        if fixtures is not None and fixtures.input_schema(params.name) is not None:
            return await fixtures.call(params, caller, as_task, ctx.session.client_capabilities)

        async def progress(value: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(value, total, message)

        call = executor.call_with_tasks(params.name, params.arguments, caller, progress,
                                        transport=transport_of(ctx), confirmation=channel_for(ctx, params),
                                        traceparent=client_traceparent(getattr(ctx.request, "headers", None)),
                                        as_task=as_task)
        return await reply_to_call(params.name, call, MCP_REPLY)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        caller_of(ctx)
        return types.ListResourcesResult(resources=resources.list_resources(executor))

    async def list_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        caller_of(ctx)
        return types.ListResourceTemplatesResult(resource_templates=resources.list_templates())

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            return await resources.read_resource(executor, uri, caller_of(ctx), transport_of(ctx) + "-resource",
                                                 client_traceparent(getattr(ctx.request, "headers", None)))
        except MCPError as exc:
            if exc.error.code != resources.RESOURCE_NOT_FOUND or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                raise
            # 2026-07-28 retired -32002: an unknown resource is -32602 with the uri in data.
            raise MCPError(types.INVALID_PARAMS, exc.error.message, data={"uri": uri}) from None

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        caller_of(ctx)
        return types.ListPromptsResult(prompts=prompts.list_prompts())

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        caller_of(ctx)
        return prompts.get_prompt(params.name, params.arguments)

    server: Server[Any] = Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        cache_hints=LIST_HINTS,
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )
    # Registered directly: a call may answer a task (CreateTaskResult), a shape on_call_tool's type does not name.
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    if executor.task_runs is not None:
        install(server, TasksExtension(executor.task_runs, caller_of))
    server.middleware.append(request_state_boundary(SERVER_NAME, principal_of, request_state_keys))
    server.middleware.append(refuse_unknown_cursors)
    return server
