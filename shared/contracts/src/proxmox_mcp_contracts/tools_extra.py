"""Argument and result models of the tools beyond the original six (snapshots, storage, tasks, ...)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxmox_mcp_contracts.tools import UPID_PATTERN, GuestType, NodeName, TaskResult, VmId

SNAPSHOT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{1,39}$"
STORAGE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9\-_.]{0,63}$"
ClusterName = str


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _WaitArgs(_Args):
    wait: bool = Field(default=False, description="Follow the task to its end (progress while waiting)")
    wait_timeout: int = Field(default=300, ge=1, le=3600, description="Seconds to wait when wait is true")


class GuestRef(_Args):
    vmid: VmId
    node: NodeName | None = Field(default=None, description="Node of the guest (looked up when omitted)")


class ListSnapshotsArgs(GuestRef):
    pass


class SnapshotCreateArgs(GuestRef, _WaitArgs):
    name: str = Field(pattern=SNAPSHOT_NAME_PATTERN, description="Snapshot name (letters, digits, - and _)")
    description: str | None = Field(default=None, max_length=1024)
    vmstate: bool = Field(default=False, description="QEMU only: include the RAM state")


class SnapshotRefArgs(GuestRef, _WaitArgs):
    name: str = Field(pattern=SNAPSHOT_NAME_PATTERN)


class ListStorageArgs(_Args):
    node: NodeName | None = Field(default=None, description="Storage as seen from this node (default: all nodes)")


class StorageContentArgs(_Args):
    node: NodeName
    storage: str = Field(pattern=STORAGE_ID_PATTERN, max_length=64)
    content: Literal["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"] | None = None


class ListTasksArgs(_Args):
    node: NodeName | None = Field(default=None, description="Only tasks of this node (default: cluster-wide)")
    vmid: VmId | None = None
    errors: bool = Field(default=False, description="Only failed tasks")
    limit: int = Field(default=50, ge=1, le=500)


class TaskLogArgs(_Args):
    upid: str = Field(pattern=UPID_PATTERN, max_length=256)
    start: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=5000)


class WaitTaskArgs(_Args):
    upid: str = Field(pattern=UPID_PATTERN, max_length=256)
    timeout: int = Field(default=300, ge=1, le=3600)


class ClusterResourcesArgs(_Args):
    type: Literal["vm", "storage", "node", "sdn"] | None = None


class NodeNetworkArgs(_Args):
    node: NodeName
    type: Literal["bridge", "bond", "eth", "alias", "vlan", "OVSBridge", "OVSBond", "OVSPort", "OVSIntPort",
                  "any_bridge", "any_local_bridge", "include_sdn"] | None = None


class GuestExecArgs(GuestRef):
    command: str = Field(min_length=1, max_length=8192, description="Command to run inside the guest")
    timeout: int = Field(default=30, ge=1, le=3600)


class Snapshot(_Result):
    name: str
    description: str | None = None
    snaptime: int | None = None
    parent: str | None = None
    vmstate: bool | None = None


class SnapshotListResult(_Result):
    vmid: int
    node: str
    type: GuestType
    snapshots: list[Snapshot]


class TaskStartResult(_Result):
    upid: str
    node: str
    vmid: int | None = None
    type: GuestType | None = None
    waited: bool = False
    task: TaskResult | None = None


class StorageInfo(_Result):
    storage: str
    node: str | None = None
    type: str | None = None
    content: str | None = None
    status: str | None = None
    shared: bool | None = None
    enabled: bool | None = None
    active: bool | None = None
    total: int | None = None
    used: int | None = None
    avail: int | None = None


class StorageListResult(_Result):
    storages: list[StorageInfo]


class StorageItem(_Result):
    volid: str
    content: str | None = None
    format: str | None = None
    size: int | None = None
    vmid: int | None = None
    ctime: int | None = None


class StorageContentResult(_Result):
    node: str
    storage: str
    items: list[StorageItem]


class TaskSummary(_Result):
    upid: str
    node: str
    type: str | None = None
    id: str | None = None
    user: str | None = None
    status: str | None = None
    starttime: int | None = None
    endtime: int | None = None


class TaskListResult(_Result):
    tasks: list[TaskSummary]


class TaskLogLine(_Result):
    n: int
    t: str


class TaskLogResult(_Result):
    upid: str
    lines: list[TaskLogLine]


class ClusterStatusResult(_Result):
    items: list[dict[str, Any]] = Field(description="Proxmox /cluster/status entries (cluster and nodes)")


class ClusterResourcesResult(_Result):
    resources: list[dict[str, Any]]


class NetworkInterface(_Result):
    iface: str
    type: str | None = None
    active: bool | None = None
    autostart: bool | None = None
    method: str | None = None
    address: str | None = None
    netmask: str | None = None
    cidr: str | None = None
    gateway: str | None = None
    bridge_ports: str | None = None
    comments: str | None = None


class NodeNetworkResult(_Result):
    node: str
    interfaces: list[NetworkInterface]


class GuestExecResult(_Result):
    vmid: int
    node: str
    type: GuestType
    command: str
    exit_code: int | None = None
    stdout: str
    stderr: str
    truncated: bool
    duration_ms: float
