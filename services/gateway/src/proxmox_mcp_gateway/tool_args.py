"""The argument models clients see: the workers' models plus what only the gateway reads (cluster, confirm,
idempotency_key), and the container variants of the guest tools. Gateway-only fields never travel to a worker."""

from __future__ import annotations

from typing import Literal

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts import tools_extra as x
from pydantic import BaseModel, ConfigDict, Field

GATEWAY_ONLY_FIELDS = frozenset({"cluster", "confirm", "idempotency_key"})
"""Read by the gateway and removed before the request goes to a worker."""

ContainerActionName = Literal["start", "stop", "shutdown", "restart", "reboot", "suspend", "resume"]


class ClusterArg(BaseModel):
    cluster: str | None = Field(
        default=None, min_length=1, max_length=63,
        description="Configured cluster to act on (default: the gateway's default cluster; see proxmox://clusters)",
    )


class ConfirmArg(BaseModel):
    confirm: bool = Field(
        default=False,
        description="Confirms a destructive call. Clients that can ask their user (MCP elicitation) are asked "
        "instead; others must pass confirm=true, after the user agreed, or the call is refused.",
    )


class IdempotencyArg(BaseModel):
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Makes a retry safe: a repeated call with the same key (from the same token, within minutes) "
        "and the same arguments returns the first call's result, task or error and never does the work twice; "
        "the same key with other arguments is refused (conflict). Use a new key (e.g. a UUID) per operation.",
    )


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the original six --------------------------------------------------------------------------------------------


class ExecuteCommandToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, t.ExecuteCommandArgs):
    pass


class ListVmsToolArgs(ClusterArg, t.ListVmsArgs):
    pass


class VmStatusToolArgs(ClusterArg, t.VmStatusArgs):
    pass


class VmActionToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, t.VmActionArgs):
    pass


class NodeStatusToolArgs(ClusterArg, t.NodeStatusArgs):
    pass


class ProxmoxApiToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, t.ProxmoxApiArgs):
    pass


# --- containers (the guest tools with type fixed to lxc) ---------------------------------------------------------


class _ListContainers(_Args):
    node: t.NodeName | None = Field(default=None, description="Only containers on this node")
    status: Literal["running", "stopped", "paused", "suspended"] | None = Field(
        default=None, description="Only containers in this state"
    )


class _ContainerStatus(_Args):
    vmid: t.VmId
    node: t.NodeName | None = Field(default=None, description="Node of the container (looked up when omitted)")


class _ContainerAction(_Args):
    vmid: t.VmId
    action: ContainerActionName = Field(description="restart is Proxmox's reboot; containers have no reset")
    node: t.NodeName | None = Field(default=None, description="Node of the container (looked up when omitted)")
    wait: bool = Field(default=False, description="Follow the task to its end and return its exit status")
    wait_timeout: int = Field(default=300, ge=1, le=3600, description="Seconds to wait for the task when wait")


class ListContainersArgs(ClusterArg, _ListContainers):
    pass


class ContainerStatusArgs(ClusterArg, _ContainerStatus):
    pass


class ContainerActionArgs(ClusterArg, ConfirmArg, IdempotencyArg, _ContainerAction):
    pass


# --- snapshots, storage, tasks, cluster, network, guest commands -------------------------------------------------


class ListSnapshotsToolArgs(ClusterArg, x.ListSnapshotsArgs):
    pass


class CreateSnapshotToolArgs(ClusterArg, IdempotencyArg, x.SnapshotCreateArgs):
    pass


class DeleteSnapshotToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, x.SnapshotDeleteArgs):
    pass


class RollbackSnapshotToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, x.SnapshotRollbackArgs):
    pass


class ListStorageToolArgs(ClusterArg, x.ListStorageArgs):
    pass


class StorageContentToolArgs(ClusterArg, x.StorageContentArgs):
    pass


class ListTasksToolArgs(ClusterArg, x.ListTasksArgs):
    pass


class TaskStatusToolArgs(ClusterArg, t.TaskStatusArgs):
    pass


class TaskLogToolArgs(ClusterArg, x.TaskLogArgs):
    pass


class WaitTaskToolArgs(ClusterArg, x.WaitTaskArgs):
    pass


class ClusterStatusToolArgs(ClusterArg, x.ClusterStatusArgs):
    pass


class ClusterResourcesToolArgs(ClusterArg, x.ClusterResourcesArgs):
    pass


class NodeNetworkToolArgs(ClusterArg, x.NodeNetworkArgs):
    pass


class GuestExecToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, x.GuestExecArgs):
    pass


class ContainerExecToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, x.ContainerExecArgs):
    pass


# --- backups and guest networking ---------------------------------------------------------------------------------


class ListBackupsToolArgs(ClusterArg, b.ListBackupsArgs):
    pass


class LastBackupsToolArgs(ClusterArg, b.LastBackupsArgs):
    pass


class BackupJobsToolArgs(ClusterArg, b.BackupJobsArgs):
    pass


class BackupGuestToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, b.BackupGuestArgs):
    pass


class RestoreBackupToolArgs(ClusterArg, ConfirmArg, IdempotencyArg, b.RestoreBackupArgs):
    pass


class GuestNetworkToolArgs(ClusterArg, b.GuestNetworkArgs):
    pass


def worker_payload(args: BaseModel, fixed: dict[str, object] | None = None) -> dict[str, object]:
    """What the worker receives: the validated arguments without the gateway's own fields, plus what the tool
    fixes (e.g. type=lxc for the container tools)."""
    payload = args.model_dump(mode="json", exclude_none=True, exclude=set(GATEWAY_ONLY_FIELDS))
    payload.update(fixed or {})
    return payload
