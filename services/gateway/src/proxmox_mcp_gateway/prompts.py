"""MCP prompts: ready-made investigations that walk a model through the typed tools in a sensible order."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import mcp_types as types
from mcp.shared.exceptions import MCPError


@dataclass(frozen=True)
class PromptSpec:
    name: str
    title: str
    description: str
    arguments: tuple[types.PromptArgument, ...]
    build: Callable[[dict[str, str]], str]


_CLUSTER_ARG = types.PromptArgument(name="cluster", description="Cluster name (default: the default cluster)",
                                    required=False)
_VMID = re.compile(r"^\d{3,10}$")


def _cluster(args: dict[str, str]) -> str:
    """' (pass cluster="x" to every tool)' or '' for the default cluster."""
    cluster = args.get("cluster", "").strip()
    if cluster and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", cluster):
        raise MCPError(types.INVALID_PARAMS, "cluster must be a cluster name (lowercase letters, digits, - and _)")
    return f' (pass cluster="{cluster}" to every tool)' if cluster else ""


def _diagnose_vm(args: dict[str, str]) -> str:
    vmid = args.get("vmid", "").strip()
    if not _VMID.match(vmid):
        raise MCPError(types.INVALID_PARAMS, "vmid must be a VM or container id (a number, 100 or more)")
    on = _cluster(args)
    return (
        f"Guest {vmid} will not start. Find out why, step by step, using only read tools{on}; do not change "
        "anything until you have told me the cause and I agreed to the fix:\n"
        f"1. vm_status vmid={vmid}: its type, node, state and any lock (a lock such as backup, snapshot or "
        "migrate blocks a start).\n"
        f"2. list_tasks vmid={vmid} errors=true, then task_log (tail=50) of the newest failed task: the exact "
        "error Proxmox gave.\n"
        "3. node_status of its node: is the node online, with enough free memory for the guest's maxmem?\n"
        "4. list_storage for that node: are the storages of its disks active and not full?\n"
        f"5. list_snapshots vmid={vmid} if a rollback or snapshot task failed.\n"
        "Then report: the cause, the evidence (tool results), and the smallest fix. If the fix is a start, "
        "use vm_action (or container_action) with wait=true after I agree."
    )


def _health_report(args: dict[str, str]) -> str:
    on = _cluster(args)
    return (
        f"Write a health report of the Proxmox cluster{on}. Use only read tools:\n"
        "1. cluster_status: quorum and which nodes are online.\n"
        "2. node_status: CPU, memory, disk and load per node; flag anything above 85%.\n"
        "3. list_storage: flag inactive storage and storage above 80% used.\n"
        "4. list_vms: count guests by state; list guests that are stopped but not templates.\n"
        "5. list_tasks errors=true limit=20: recent failures, grouped by type, with task_log tails for the "
        "newest ones.\n"
        "Finish with a short table (component, status, finding) and a prioritized list of actions. Do not change "
        "anything."
    )


def _snapshot_first(args: dict[str, str]) -> str:
    vmid = args.get("vmid", "").strip()
    if not _VMID.match(vmid):
        raise MCPError(types.INVALID_PARAMS, "vmid must be a VM or container id (a number, 100 or more)")
    change = args.get("change", "").strip()[:500] or "the change I describe next"
    on = _cluster(args)
    return (
        f"Before making this change to guest {vmid}{on}: {change}\n"
        f"1. list_snapshots vmid={vmid}, then create_snapshot vmid={vmid} with a name like pre-change-YYYYMMDD "
        "and wait=true; stop if it fails.\n"
        "2. Make the change, checking vm_status (or task results) after each step.\n"
        f"3. If anything goes wrong, tell me and offer rollback_snapshot vmid={vmid} to that snapshot (it needs "
        "my confirmation)."
    )


PROMPTS: dict[str, PromptSpec] = {
    spec.name: spec
    for spec in (
        PromptSpec(
            name="diagnose_vm_start",
            title="Diagnose a VM that won't start",
            description="Investigate why a VM or container does not start: status, locks, failed tasks and their "
            "logs, node resources, storage.",
            arguments=(types.PromptArgument(name="vmid", description="VM or container id", required=True),
                       _CLUSTER_ARG),
            build=_diagnose_vm,
        ),
        PromptSpec(
            name="cluster_health_report",
            title="Cluster health report",
            description="Quorum, nodes, storage, guests and recent task failures of a cluster in one report.",
            arguments=(_CLUSTER_ARG,),
            build=_health_report,
        ),
        PromptSpec(
            name="snapshot_before_change",
            title="Snapshot a guest before changing it",
            description="Take a snapshot, make a change step by step, and offer a rollback if it goes wrong.",
            arguments=(types.PromptArgument(name="vmid", description="VM or container id", required=True),
                       types.PromptArgument(name="change", description="What you are about to change",
                                            required=False),
                       _CLUSTER_ARG),
            build=_snapshot_first,
        ),
    )
}


def list_prompts() -> list[types.Prompt]:
    return [types.Prompt(name=p.name, title=p.title, description=p.description, arguments=list(p.arguments))
            for p in PROMPTS.values()]


def get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
    spec = PROMPTS.get(name)
    if spec is None:
        raise MCPError(types.INVALID_PARAMS, f"unknown prompt {name[:100]!r}; prompts: {', '.join(PROMPTS)}")
    text = spec.build(arguments or {})
    return types.GetPromptResult(description=spec.description, messages=[
        types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))])
