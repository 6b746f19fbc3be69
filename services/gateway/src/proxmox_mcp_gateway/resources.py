"""MCP resources and resource templates: cluster names, nodes, guests and tasks as JSON, read through the same
call path as the tools (scopes, audit, redaction) at read scope, plus the two static help texts."""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import unquote

import mcp_types as types
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

from proxmox_mcp_gateway.calls import ToolExecutor

RESOURCE_NOT_FOUND = -32002
"""The MCP spec's error code for a resource that does not exist."""
JSON = "application/json"

STATIC_RESOURCES = {
    "proxmox://terminal": (
        "terminal",
        "How to run commands on the Proxmox hosts with execute_command (policy, limits).",
        "execute_command runs one command per call on a Proxmox host over SSH. The command is parsed without a "
        "shell and checked against your token's command profile: no pipes, redirections, substitutions or "
        "variable expansion; dangerous programs are refused. Arguments: command (string), timeout (seconds, "
        "default 30, capped by the server), node (optional node name), cluster (optional). Output is capped; "
        "truncated=true means it was cut. Commands that stop, reset or roll back guests need confirmation. "
        "guest_exec and container_exec run commands inside VMs and containers under the same policy.",
    ),
    "proxmox://api": (
        "api",
        "How to call the Proxmox VE API with proxmox_api.",
        "proxmox_api calls the Proxmox VE REST API below /api2/json: method (GET, POST, PUT, DELETE), path "
        "(e.g. /nodes, /cluster/resources, /nodes/pve1/qemu/100/config) and data (parameters). GET needs read "
        "scope; writes need admin scope; DELETE and writes that stop, reset or roll back need confirmation. "
        "Answers are the 'data' member of Proxmox's reply.",
    ),
}

TEMPLATES = (
    ("vm", "proxmox://vms/{vmid}", "Status of one VM or container of the default cluster"),
    ("cluster-nodes", "proxmox://clusters/{cluster}/nodes", "Status of every node of a cluster"),
    ("cluster-vms", "proxmox://clusters/{cluster}/vms", "Every VM and container of a cluster"),
    ("cluster-vm", "proxmox://clusters/{cluster}/vms/{vmid}", "Status of one VM or container of a cluster"),
    ("cluster-task", "proxmox://clusters/{cluster}/tasks/{upid}", "Status and log tail of one task of a cluster"),
)

_SHORT_VM = re.compile(r"^proxmox://vms/(?P<vmid>\d{1,10})$")
_CLUSTER = re.compile(r"^proxmox://clusters/(?P<cluster>[^/]+)/(?P<rest>.+)$")
_VM = re.compile(r"^vms/(?P<vmid>\d{1,10})$")
_TASK = re.compile(r"^tasks/(?P<upid>.+)$")


def list_resources(executor: ToolExecutor) -> list[types.Resource]:
    clusters = executor.clusters
    resources = [
        types.Resource(name="clusters", uri="proxmox://clusters", mime_type=JSON,
                       description="The clusters this server reaches (names, which is the default)"),
        types.Resource(name="nodes", uri="proxmox://nodes", mime_type=JSON,
                       description=f"Status of every node of the default cluster ({clusters.default})"),
        types.Resource(name="vms", uri="proxmox://vms", mime_type=JSON,
                       description=f"Every VM and container of the default cluster ({clusters.default})"),
    ]
    for name in clusters.known:
        resources += [
            types.Resource(name=f"{name}-nodes", uri=f"proxmox://clusters/{name}/nodes", mime_type=JSON,
                           description=f"Status of every node of cluster {name}"),
            types.Resource(name=f"{name}-vms", uri=f"proxmox://clusters/{name}/vms", mime_type=JSON,
                           description=f"Every VM and container of cluster {name}"),
        ]
    resources += [types.Resource(name=name, uri=uri, description=desc, mime_type="text/plain")
                  for uri, (name, desc, _text) in STATIC_RESOURCES.items()]
    return resources


def list_templates() -> list[types.ResourceTemplate]:
    return [types.ResourceTemplate(name=name, uri_template=template, description=desc, mime_type=JSON)
            for name, template, desc in TEMPLATES]


FRESHNESS_MS: dict[str, int] = {
    "vm_status": 5_000,
    "task_status": 2_000,
    "list_vms": 10_000,
    "node_status": 30_000,
}
"""How long a read stays fresh: a guest's or a task's status changes within seconds, the node list seldom."""
STATIC_MS = 3_600_000
"""The help texts and the cluster names change only with a new server version or configuration."""


def freshness(uri: str) -> tuple[int, Literal["public", "private"]]:
    """(ttlMs, cacheScope) of a resource read. Reads of cluster state are private: what a token may read depends
    on the token (its tool allowlist), so a shared cache must not hand one caller's read to another."""
    if uri in STATIC_RESOURCES or uri == "proxmox://clusters":
        return STATIC_MS, "public"
    route = _route(uri)
    return (FRESHNESS_MS.get(route[0], 0) if route else 0), "private"


def _route(uri: str) -> tuple[str, dict[str, Any]] | None:
    """(tool, arguments) that answer a resource URI, or None for an unknown URI."""
    if uri == "proxmox://nodes":
        return "node_status", {}
    if uri == "proxmox://vms":
        return "list_vms", {}
    if match := _SHORT_VM.match(uri):
        return "vm_status", {"vmid": int(match["vmid"])}
    match = _CLUSTER.match(uri)
    if match is None:
        return None
    cluster, rest = unquote(match["cluster"]), match["rest"]
    if rest == "nodes":
        return "node_status", {"cluster": cluster}
    if rest == "vms":
        return "list_vms", {"cluster": cluster}
    if vm := _VM.match(rest):
        return "vm_status", {"cluster": cluster, "vmid": int(vm["vmid"])}
    if task := _TASK.match(rest):
        return "task_status", {"cluster": cluster, "upid": unquote(task["upid"])}
    return None


async def read_resource(executor: ToolExecutor, uri: str, caller: Caller, transport: str,
                        traceparent: str | None = None) -> types.ReadResourceResult:
    ttl_ms, scope = freshness(uri)
    if uri in STATIC_RESOURCES:
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="text/plain", text=STATIC_RESOURCES[uri][2])], ttl_ms=ttl_ms, cache_scope=scope)
    if uri == "proxmox://clusters":
        clusters = executor.clusters
        data: Any = {"default": clusters.default, "clusters": [
            {"name": name, "default": name == clusters.default, "nodes": f"proxmox://clusters/{name}/nodes",
             "vms": f"proxmox://clusters/{name}/vms"} for name in clusters.known]}
    else:
        route = _route(uri)
        if route is None:
            raise MCPError(RESOURCE_NOT_FOUND, f"unknown resource {uri[:200]}; see resources/list and "
                           "resources/templates/list")
        tool, args = route
        try:
            data = await executor.call(tool, args, _read_only(caller), transport=transport, any_offered=True,
                                       traceparent=traceparent)
        except ServiceFailure as exc:
            code = {ErrorCode.NOT_FOUND: RESOURCE_NOT_FOUND, ErrorCode.INTERNAL: types.INTERNAL_ERROR}.get(
                exc.code, types.INVALID_PARAMS)
            raise MCPError(code, exc.info.as_text()) from None
    return types.ReadResourceResult(contents=[types.TextResourceContents(
        uri=uri, mime_type=JSON, text=json.dumps(data, sort_keys=True))], ttl_ms=ttl_ms, cache_scope=scope)


def _read_only(caller: Caller) -> Caller:
    """Resources are reads: run them at read scope whatever the token may do."""
    return caller if caller.scope is Scope.READ else caller.model_copy(update={"scope": Scope.READ})
