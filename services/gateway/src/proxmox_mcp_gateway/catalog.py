"""The tools the gateway offers (names, schemas, scopes, annotations, which worker runs them) and the exposure
profiles that let a deployment offer only some of them (each listed tool costs the client context)."""

from __future__ import annotations

from collections.abc import Iterable

from proxmox_mcp_gateway.spec import Annotations, TaskMode, ToolSpec
from proxmox_mcp_gateway.tools_backups import BACKUP_TOOLS, GUEST_NETWORK_TOOLS
from proxmox_mcp_gateway.tools_guests import CONTAINER_TOOLS, ORIGINAL_TOOLS, SNAPSHOT_TOOLS
from proxmox_mcp_gateway.tools_ops import CLUSTER_TOOLS, GUEST_COMMAND_TOOLS, STORAGE_TOOLS, TASK_TOOLS

__all__ = ["PROFILE_NAMES", "TOOLS", "TOOLS_BY_NAME", "Annotations", "TaskMode", "ToolSpec", "exposed_tools"]

TOOLS: tuple[ToolSpec, ...] = (
    *ORIGINAL_TOOLS, *CONTAINER_TOOLS, *SNAPSHOT_TOOLS, *STORAGE_TOOLS, *TASK_TOOLS, *CLUSTER_TOOLS,
    *GUEST_COMMAND_TOOLS, *BACKUP_TOOLS, *GUEST_NETWORK_TOOLS,
)
TOOLS_BY_NAME: dict[str, ToolSpec] = {spec.name: spec for spec in TOOLS}

_MINIMAL = tuple(spec.name for spec in ORIGINAL_TOOLS)
_STANDARD = (
    *_MINIMAL, "list_containers", "container_status", "container_action", "list_snapshots", "create_snapshot",
    "list_storage", "list_tasks", "task_status", "task_log", "wait_task", "cluster_status", "cluster_resources",
    "list_backups", "last_backups", "backup_jobs", "guest_network",
)
PROFILES: dict[str, tuple[str, ...]] = {
    "minimal": _MINIMAL,
    "standard": _STANDARD,
    "full": tuple(spec.name for spec in TOOLS),
}
PROFILE_NAMES = tuple(PROFILES)


def exposed_tools(profile: str, explicit: Iterable[str] = ()) -> frozenset[str]:
    """The tool names a deployment offers: an explicit list wins over the profile. ValueError names what is wrong."""
    names = [name.strip() for name in explicit if name.strip()]
    if names:
        unknown = sorted(set(names) - set(TOOLS_BY_NAME))
        if unknown:
            raise ValueError(f"unknown tool(s) {', '.join(unknown)}; known tools: {', '.join(TOOLS_BY_NAME)}")
        return frozenset(names)
    if profile not in PROFILES:
        raise ValueError(f"unknown tool profile {profile!r}; use one of {', '.join(PROFILES)} or list tools")
    return frozenset(PROFILES[profile])
