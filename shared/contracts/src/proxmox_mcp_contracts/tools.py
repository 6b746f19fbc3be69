"""Argument and result models of the tools. Their JSON schemas are the tools' inputSchema/outputSchema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NODE_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?$"
API_PATH_PATTERN = r"^/[A-Za-z0-9_\-./{}:@=%]*$"
UPID_PATTERN = r"^UPID:[A-Za-z0-9\-]+:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:[^:\s]*:[^:\s]*:[^:\s]+:$"

NodeName = Annotated[str, Field(pattern=NODE_NAME_PATTERN, max_length=63, description="Proxmox node name")]
VmId = Annotated[int, Field(ge=100, le=999_999_999, description="VM or container id (100-999999999)")]
GuestType = Literal["qemu", "lxc"]
VmActionName = Literal["start", "stop", "restart", "shutdown", "suspend", "resume", "reset", "reboot"]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- arguments -------------------------------------------------------------------------------


class ExecuteCommandArgs(_Args):
    command: str = Field(min_length=1, max_length=8192, description="Command line to run on the Proxmox host")
    timeout: int = Field(default=30, ge=1, le=3600, description="Seconds before the command is killed")
    node: NodeName | None = Field(default=None, description="Node to run on (default: the configured host)")
    host: NodeName | None = Field(default=None, description="Alias of node, kept for older prompts")

    @model_validator(mode="after")
    def _node_or_host(self) -> ExecuteCommandArgs:
        if self.node and self.host and self.node != self.host:
            raise ValueError("give either node or host, not two different values")
        if self.node is None and self.host is not None:
            self.node = self.host
        if "\x00" in self.command:
            raise ValueError("command contains a NUL byte")
        return self


class ListVmsArgs(_Args):
    node: NodeName | None = Field(default=None, description="Only guests on this node")
    type: GuestType | None = Field(default=None, description="Only qemu VMs or lxc containers")
    status: Literal["running", "stopped", "paused", "suspended"] | None = Field(
        default=None, description="Only guests in this state"
    )


class VmStatusArgs(_Args):
    vmid: VmId
    node: NodeName | None = Field(default=None, description="Node of the guest (looked up when omitted)")
    type: GuestType | None = Field(
        default=None, description="Only accept a guest of this type (qemu VM or lxc container); default: either"
    )


class VmActionArgs(_Args):
    vmid: VmId
    action: VmActionName = Field(description="restart is Proxmox's reboot")
    node: NodeName | None = Field(default=None, description="Node of the guest (looked up when omitted)")
    type: GuestType | None = Field(
        default=None, description="Only accept a guest of this type (qemu VM or lxc container); default: either"
    )
    wait: bool = Field(default=False, description="Follow the task to its end and return its exit status")
    wait_timeout: int = Field(default=300, ge=1, le=3600, description="Seconds to wait for the task when wait")


class NodeStatusArgs(_Args):
    node: NodeName | None = Field(default=None, description="One node (default: all nodes)")


class ProxmoxApiArgs(_Args):
    method: HttpMethod = Field(default="GET", description="HTTP method")
    path: str = Field(
        min_length=1, max_length=512, pattern=API_PATH_PATTERN, description="API path below /api2/json, e.g. /nodes"
    )
    data: dict[str, Any] | None = Field(default=None, description="Parameters (query for GET, body otherwise)")

    @model_validator(mode="after")
    def _clean_path(self) -> ProxmoxApiArgs:
        parts = self.path.split("/")
        if any(part in {".", ".."} for part in parts):
            raise ValueError("path must not contain '.' or '..' segments")
        if self.path.startswith("/api2/"):
            raise ValueError("give the path below /api2/json, e.g. /nodes")
        return self


class TaskStatusArgs(_Args):
    upid: str = Field(pattern=UPID_PATTERN, max_length=256)
    node: NodeName | None = None
    log_lines: int = Field(default=20, ge=0, le=500)


# --- results ---------------------------------------------------------------------------------


class UnreachableNode(_Result):
    """A node whose part of a multi-node answer is missing or not current."""

    node: str
    code: str = Field(description="offline (the cluster has lost the node), or the error code of the failed "
                      "request: unavailable, timeout, upstream_error, ...")
    reason: str


class PartialResult(_Result):
    """What every multi-node result carries: the nodes that did not answer, and why. The rest of the result is
    what the reachable nodes gave; nothing from an unreachable node is passed off as current."""

    unreachable_nodes: list[str] = Field(default_factory=list, description="Names of the nodes in `unreachable`")
    unreachable: list[UnreachableNode] = Field(default_factory=list[UnreachableNode],
                                               description="Nodes that did not answer "
                                               "(offline, timed out, failed), each with the reason")


class ExecResult(_Result):
    node: str
    command: str
    exit_code: int | None = Field(description="Exit status; null when the command was killed by a signal")
    stdout: str
    stderr: str
    truncated: bool = Field(description="True when output went past the cap and was cut")
    duration_ms: float


class VmSummary(_Result):
    vmid: int
    name: str | None = None
    node: str
    type: GuestType
    status: str
    template: bool = False
    cpu: float | None = None
    maxcpu: float | None = None
    mem: int | None = None
    maxmem: int | None = None
    disk: int | None = None
    maxdisk: int | None = None
    uptime: int | None = None
    tags: str | None = None


class ListVmsResult(PartialResult):
    vms: list[VmSummary] = Field(description="Guests on unreachable nodes are listed with status 'unknown' and "
                                 "without usage figures: Proxmox cannot say what they are doing")
    count: int


class VmStatusResult(_Result):
    vmid: int
    node: str
    type: GuestType
    status: str
    name: str | None = None
    qmpstatus: str | None = None
    lock: str | None = None
    cpu: float | None = None
    cpus: float | None = None
    mem: int | None = None
    maxmem: int | None = None
    disk: int | None = None
    maxdisk: int | None = None
    uptime: int | None = None
    netin: int | None = None
    netout: int | None = None
    diskread: int | None = None
    diskwrite: int | None = None
    pid: int | None = None
    tags: str | None = None


class TaskResult(_Result):
    upid: str
    node: str
    status: Literal["running", "stopped"]
    exitstatus: str | None = None
    ok: bool | None = Field(default=None, description="True when the task stopped with exitstatus OK")
    type: str | None = None
    id: str | None = None
    user: str | None = None
    starttime: int | None = None
    log_tail: list[str] = Field(default_factory=list)


class VmActionResult(_Result):
    vmid: int
    node: str
    type: GuestType
    action: VmActionName
    upid: str
    waited: bool
    task: TaskResult | None = Field(default=None, description="The finished task when wait was true")


class NodeInfo(_Result):
    node: str
    status: str
    cpu: float | None = None
    maxcpu: int | None = None
    mem: int | None = None
    maxmem: int | None = None
    disk: int | None = None
    maxdisk: int | None = None
    uptime: int | None = None
    loadavg: list[str] | None = None
    pveversion: str | None = None
    kversion: str | None = None


class NodeStatusResult(PartialResult):
    nodes: list[NodeInfo]


class ProxmoxApiResult(_Result):
    method: HttpMethod
    path: str
    data: Any = None


class ProbeResult(_Result):
    ok: bool
    latency_ms: float
    detail: str = ""
    insecure_tls: bool = Field(
        default=False, description="The api-worker does not verify the Proxmox certificate (PROXMOX_VERIFY_SSL=false)"
    )
