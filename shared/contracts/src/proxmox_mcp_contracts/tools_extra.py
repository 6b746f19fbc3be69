"""Argument and result models of the tools beyond the original six (snapshots, storage, tasks, cluster,
network, guest commands). Parameter names and limits follow the Proxmox VE 9.1 API schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxmox_mcp_contracts.tools import UPID_PATTERN, GuestType, NodeName, PartialResult, TaskResult, VmId

SNAPSHOT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{1,39}$"
"""Proxmox's pve-configid (letters, digits, '-', '_'; a letter first), at most 40 characters."""
STORAGE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9\-_.]{0,63}$"
StorageContentType = Literal["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"]
NetworkType = Literal["bridge", "bond", "eth", "alias", "vlan", "fabric", "OVSBridge", "OVSBond", "OVSPort",
                      "OVSIntPort", "vnet", "any_bridge", "any_local_bridge", "include_sdn"]
ClusterName = str


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _WaitArgs(_Args):
    """Read by the gateway, which follows the started task (task_status) when wait is true."""

    wait: bool = Field(default=False, description="Follow the task to its end (progress while waiting)")
    wait_timeout: int = Field(default=300, ge=1, le=3600, description="Seconds to wait when wait is true")


class GuestLocator(_Args):
    vmid: VmId
    node: NodeName | None = Field(default=None, description="Node of the guest (looked up when omitted)")


class GuestRef(GuestLocator):
    type: GuestType | None = Field(
        default=None, description="Only accept a guest of this type (qemu VM or lxc container); default: either"
    )


def _no_nul(command: str) -> str:
    if "\x00" in command:
        raise ValueError("command contains a NUL byte")
    return command


# --- snapshots -------------------------------------------------------------------------------


class ListSnapshotsArgs(GuestRef):
    pass


class SnapshotCreateArgs(GuestRef, _WaitArgs):
    name: str = Field(pattern=SNAPSHOT_NAME_PATTERN, description="Snapshot name (letters, digits, - and _)")
    description: str | None = Field(default=None, max_length=1024)
    vmstate: bool = Field(default=False, description="QEMU only: include the RAM state")


class SnapshotRefArgs(GuestRef, _WaitArgs):
    name: str = Field(pattern=SNAPSHOT_NAME_PATTERN)


class SnapshotDeleteArgs(SnapshotRefArgs):
    force: bool = Field(default=False, description="Remove the snapshot from the config even if removing its "
                        "disk snapshots fails")


class SnapshotRollbackArgs(SnapshotRefArgs):
    start: bool = Field(default=False, description="Start the guest after a successful rollback")


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
    snapshots: list[Snapshot] = Field(description="Oldest first; Proxmox's 'current' pseudo-entry is left out")
    current_parent: str | None = Field(default=None, description="The snapshot the guest's current state is based on")


class TaskStartResult(_Result):
    """What a task-starting operation returns: the UPID at once; the finished task when the gateway waited."""

    upid: str
    node: str
    action: str = Field(description="The operation that started the task, e.g. snapshot_create")
    vmid: int | None = None
    type: GuestType | None = None
    snapshot: str | None = None
    waited: bool = False
    task: TaskResult | None = None


# --- storage ---------------------------------------------------------------------------------


class ListStorageArgs(_Args):
    node: NodeName | None = Field(default=None, description="Storage as seen from this node (default: all nodes)")
    content: StorageContentType | None = Field(default=None, description="Only storage that holds this content")


class StorageContentArgs(_Args):
    node: NodeName = Field(description="Node whose view of the storage to list")
    storage: str = Field(pattern=STORAGE_ID_PATTERN, max_length=64, description="Storage id, e.g. local")
    content: StorageContentType | None = Field(default=None, description="Only volumes of this content type")
    vmid: VmId | None = Field(default=None, description="Only volumes owned by this guest")


class StorageInfo(_Result):
    storage: str
    node: str | None = None
    type: str | None = None
    content: str | None = None
    shared: bool | None = None
    enabled: bool | None = None
    active: bool | None = None
    total: int | None = None
    used: int | None = None
    avail: int | None = None
    used_fraction: float | None = None


class StorageListResult(PartialResult):
    storages: list[StorageInfo] = Field(description="Sorted by node, then storage id")


class StorageItem(_Result):
    volid: str
    content: str | None = None
    format: str | None = None
    size: int | None = None
    used: int | None = None
    vmid: int | None = None
    ctime: int | None = None
    notes: str | None = None
    protected: bool | None = None
    subtype: str | None = None


class StorageContentResult(_Result):
    node: str
    storage: str
    items: list[StorageItem]


# --- tasks -----------------------------------------------------------------------------------


class ListTasksArgs(_Args):
    node: NodeName | None = Field(default=None, description="Only tasks of this node (default: cluster-wide)")
    vmid: VmId | None = Field(default=None, description="Only tasks of this guest")
    errors: bool = Field(default=False, description="Only failed tasks")
    limit: int = Field(default=50, ge=1, le=500)


class TaskLogArgs(_Args):
    upid: str = Field(pattern=UPID_PATTERN, max_length=256)
    start: int = Field(default=0, ge=0, description="First line to return (0-based)")
    limit: int = Field(default=100, ge=1, le=5000, description="Lines to return at most")
    tail: int | None = Field(default=None, ge=1, le=5000, description="Return the last N lines instead "
                             "(start and limit are then ignored)")


class WaitTaskArgs(_Args):
    upid: str = Field(pattern=UPID_PATTERN, max_length=256)
    timeout: int = Field(default=300, ge=1, le=3600)


class TaskSummary(_Result):
    upid: str
    node: str
    type: str | None = None
    id: str | None = None
    user: str | None = None
    status: Literal["running", "stopped"]
    exitstatus: str | None = None
    ok: bool | None = Field(default=None, description="True when the task stopped with exitstatus OK")
    starttime: int | None = None
    endtime: int | None = None


class TaskListResult(PartialResult):
    tasks: list[TaskSummary] = Field(description="Newest first")
    count: int


class TaskLogLine(_Result):
    n: int = Field(description="Line number (1-based)")
    t: str


class TaskLogResult(_Result):
    upid: str
    node: str
    lines: list[TaskLogLine]


# --- cluster and network ---------------------------------------------------------------------


class ClusterStatusArgs(_Args):
    pass


class ClusterNode(_Result):
    name: str
    nodeid: int | None = None
    ip: str | None = None
    online: bool | None = None
    local: bool | None = None
    level: str | None = None


class ClusterStatusResult(_Result):
    name: str | None = Field(default=None, description="Cluster name; null for a standalone node")
    quorate: bool | None = None
    version: int | None = None
    node_count: int
    nodes: list[ClusterNode]


class ClusterResourcesArgs(_Args):
    type: Literal["vm", "storage", "node", "sdn"] | None = None


class ClusterResourcesResult(PartialResult):
    resources: list[dict[str, Any]] = Field(description="Proxmox /cluster/resources entries as Proxmox gives them "
                                            "(booleans as 0/1), sorted by id")
    count: int


class NodeNetworkArgs(_Args):
    node: NodeName
    type: NetworkType | None = None


class NetworkInterface(_Result):
    iface: str
    type: str | None = None
    active: bool | None = None
    autostart: bool | None = None
    method: str | None = None
    method6: str | None = None
    families: list[str] | None = None
    address: str | None = None
    netmask: str | None = None
    cidr: str | None = None
    gateway: str | None = None
    address6: str | None = None
    netmask6: str | None = None
    cidr6: str | None = None
    gateway6: str | None = None
    bridge_ports: str | None = None
    bridge_vlan_aware: bool | None = None
    slaves: str | None = None
    bond_mode: str | None = None
    comments: str | None = None


class NodeNetworkResult(_Result):
    node: str
    interfaces: list[NetworkInterface] = Field(description="Sorted by interface name")


# --- guest commands --------------------------------------------------------------------------


class GuestExecArgs(GuestLocator):
    """A command inside a QEMU VM through its guest agent (agent/exec + agent/exec-status)."""

    command: str = Field(min_length=1, max_length=8192, description="Command line to run inside the VM (checked "
                         "by the command policy, run as an argv without a shell)")
    timeout: int = Field(default=30, ge=1, le=3600, description="Seconds to wait for the command to exit")

    @field_validator("command")
    @classmethod
    def _no_nul_byte(cls, command: str) -> str:
        return _no_nul(command)


class ContainerExecArgs(GuestLocator):
    """A command inside an LXC container: `pct exec VMID -- argv...` over SSH on the container's node."""

    command: str = Field(min_length=1, max_length=8192, description="Command line to run inside the container "
                         "(checked by the command policy, run as an argv without a shell)")
    timeout: int = Field(default=30, ge=1, le=3600, description="Seconds before the command is killed")

    @field_validator("command")
    @classmethod
    def _no_nul_byte(cls, command: str) -> str:
        return _no_nul(command)


class GuestExecResult(_Result):
    vmid: int
    node: str
    type: GuestType
    command: str
    exit_code: int | None = Field(default=None, description="Exit status; null when ended by a signal")
    signal: int | None = Field(default=None, description="The signal that ended the command (guest agent only)")
    stdout: str
    stderr: str
    truncated: bool = Field(description="True when output went past the cap and was cut")
    duration_ms: float
    pid: int | None = Field(default=None, description="The guest agent's process id (qemu only)")
