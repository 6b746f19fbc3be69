"""The original six tools, the container tools and the snapshot tools."""

from __future__ import annotations

from types import MappingProxyType

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind

from proxmox_mcp_gateway import render as r
from proxmox_mcp_gateway import tool_args as a
from proxmox_mcp_gateway.spec import Annotations, TaskMode, ToolSpec, action_in, always

DESTRUCTIVE_ACTIONS = frozenset({"stop", "reset", "shutdown", "restart", "reboot"})
"""Power actions that end what runs in the guest (unsaved data, open sessions): they need confirmation."""

READ = Annotations(read_only=True, destructive=False, idempotent=True)
LXC = MappingProxyType({"type": "lxc"})
_WAIT = ("Returns the Proxmox task id (UPID) at once; with wait=true it follows the task to its end (progress "
         "notifications while waiting; cancelling stops the wait, not the task) and returns its exit status and "
         "log tail. Clients of the MCP tasks extension get a task for wait=true instead: tasks/get follows it, and "
         "tasks/cancel stops the following only (the Proxmox task goes on). A retry with the same idempotency_key "
         "never starts a second task.")
_CONFIRM = "Needs confirmation: the user is asked when the client supports it, otherwise pass confirm=true."

ORIGINAL_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="execute_command",
        title="Run a command on a Proxmox host",
        description=(
            "Run one vetted shell command on a Proxmox VE host over SSH and return stdout, stderr and the exit "
            "code. Use it for host inspection the typed tools do not cover (logs, disks, services). The command "
            "is parsed without a shell and checked against the caller's command profile: pipes, redirections, "
            "substitutions and dangerous programs are refused. Prefer the typed tools for guest, node, task and "
            "storage state. Costs one SSH round trip; output is capped (truncated=true when cut). Commands that "
            "stop, reset or roll back guests need confirmation like the matching typed tools."
        ),
        args_model=a.ExecuteCommandToolArgs,
        result_model=t.ExecResult,
        kind=WorkerKind.SSH,
        op=SshOp.EXEC,
        scope=Scope.EXEC,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_exec,
    ),
    ToolSpec(
        name="list_vms",
        title="List VMs and containers",
        description=(
            "List every QEMU VM and LXC container of the cluster with node, status, CPU and memory use. "
            "Filter by node, type (qemu/lxc) or status. One API call; cheap."
        ),
        args_model=a.ListVmsToolArgs,
        result_model=t.ListVmsResult,
        kind=WorkerKind.API,
        op=ApiOp.LIST_VMS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_list,
    ),
    ToolSpec(
        name="vm_status",
        title="Status of one VM or container",
        description=(
            "Current status of one guest (QEMU VM or LXC container) by vmid: state, CPU, memory, disk, network, "
            "uptime. The node is looked up when omitted."
        ),
        args_model=a.VmStatusToolArgs,
        result_model=t.VmStatusResult,
        kind=WorkerKind.API,
        op=ApiOp.VM_STATUS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_vm_status,
    ),
    ToolSpec(
        name="vm_action",
        title="Start, stop or restart a guest",
        description=(
            "Change the power state of a VM or container: start, stop (hard), shutdown (clean), restart/reboot, "
            f"reset, suspend, resume. {_WAIT} stop, shutdown, restart/reboot and reset end what runs in the guest. "
            + _CONFIRM
        ),
        args_model=a.VmActionToolArgs,
        result_model=t.VmActionResult,
        kind=WorkerKind.API,
        op=ApiOp.VM_ACTION,
        scope=Scope.OPERATE,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_action,
        task=TaskMode.STARTS,
        destructive_when=action_in(DESTRUCTIVE_ACTIONS),
    ),
    ToolSpec(
        name="node_status",
        title="Status of cluster nodes",
        description=(
            "CPU, memory, disk, load and uptime of one Proxmox node, or of every node when none is given."
        ),
        args_model=a.NodeStatusToolArgs,
        result_model=t.NodeStatusResult,
        kind=WorkerKind.API,
        op=ApiOp.NODE_STATUS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_nodes,
    ),
    ToolSpec(
        name="proxmox_api",
        title="Call the Proxmox VE API",
        description=(
            "Call any Proxmox VE API path (below /api2/json) with GET, POST, PUT or DELETE and return its data. "
            "Use it for what the typed tools do not cover. GET needs read scope; POST/PUT/DELETE need admin "
            "scope and can change or destroy anything the worker's API token may touch. DELETE and writes that "
            "stop, reset or roll back guests or nodes need confirmation (user prompt, or confirm=true)."
        ),
        args_model=a.ProxmoxApiToolArgs,
        result_model=t.ProxmoxApiResult,
        kind=WorkerKind.API,
        op=ApiOp.PROXMOX_API,
        scope=Scope.READ,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_api,
    ),
)

CONTAINER_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_containers",
        title="List LXC containers",
        description="List the LXC containers of the cluster with node, status, CPU and memory use; filter by node "
        "or status. list_vms with type=lxc. One API call; cheap.",
        args_model=a.ListContainersArgs,
        result_model=t.ListVmsResult,
        kind=WorkerKind.API,
        op=ApiOp.LIST_VMS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_list,
        fixed=LXC,
    ),
    ToolSpec(
        name="container_status",
        title="Status of one LXC container",
        description="Current status of one LXC container by vmid (state, CPU, memory, disk, network, uptime). "
        "A QEMU VM id is refused: use vm_status for VMs.",
        args_model=a.ContainerStatusArgs,
        result_model=t.VmStatusResult,
        kind=WorkerKind.API,
        op=ApiOp.VM_STATUS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_vm_status,
        fixed=LXC,
    ),
    ToolSpec(
        name="container_action",
        title="Start, stop or restart an LXC container",
        description=(
            "Change the power state of an LXC container: start, stop (hard), shutdown (clean), restart/reboot, "
            f"suspend, resume. {_WAIT} stop, shutdown and restart end what runs in the container. {_CONFIRM}"
        ),
        args_model=a.ContainerActionArgs,
        result_model=t.VmActionResult,
        kind=WorkerKind.API,
        op=ApiOp.VM_ACTION,
        scope=Scope.OPERATE,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_action,
        fixed=LXC,
        task=TaskMode.STARTS,
        destructive_when=action_in(DESTRUCTIVE_ACTIONS),
    ),
)

SNAPSHOT_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_snapshots",
        title="List snapshots of a guest",
        description="The snapshots of one VM or container (oldest first, with parent, time, description and "
        "whether RAM was saved) and which one the current state is based on. Two API calls.",
        args_model=a.ListSnapshotsToolArgs,
        result_model=x.SnapshotListResult,
        kind=WorkerKind.API,
        op=ApiOp.SNAPSHOT_LIST,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_snapshots,
    ),
    ToolSpec(
        name="create_snapshot",
        title="Snapshot a guest",
        description=f"Take a snapshot of a VM or container (vmstate=true also saves a VM's RAM). {_WAIT} Take one "
        "before risky changes; rollback_snapshot returns to it.",
        args_model=a.CreateSnapshotToolArgs,
        result_model=x.TaskStartResult,
        kind=WorkerKind.API,
        op=ApiOp.SNAPSHOT_CREATE,
        scope=Scope.OPERATE,
        annotations=Annotations(read_only=False, destructive=False, idempotent=False),
        render=r.render_task_start,
        task=TaskMode.STARTS,
    ),
    ToolSpec(
        name="delete_snapshot",
        title="Delete a snapshot",
        description=f"Delete one snapshot of a VM or container; it cannot be restored. {_WAIT} Needs admin scope. "
        + _CONFIRM,
        args_model=a.DeleteSnapshotToolArgs,
        result_model=x.TaskStartResult,
        kind=WorkerKind.API,
        op=ApiOp.SNAPSHOT_DELETE,
        scope=Scope.ADMIN,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_task_start,
        task=TaskMode.STARTS,
        destructive_when=always,
    ),
    ToolSpec(
        name="rollback_snapshot",
        title="Roll a guest back to a snapshot",
        description=f"Return a VM or container to a snapshot: everything since it is lost. {_WAIT} Needs admin "
        f"scope. {_CONFIRM}",
        args_model=a.RollbackSnapshotToolArgs,
        result_model=x.TaskStartResult,
        kind=WorkerKind.API,
        op=ApiOp.SNAPSHOT_ROLLBACK,
        scope=Scope.ADMIN,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_task_start,
        task=TaskMode.STARTS,
        destructive_when=always,
    ),
)
