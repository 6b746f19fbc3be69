"""Storage, task, cluster and network tools, and commands inside guests."""

from __future__ import annotations

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind

from proxmox_mcp_gateway import render as r
from proxmox_mcp_gateway import tool_args as a
from proxmox_mcp_gateway.spec import Annotations, TaskMode, ToolSpec

READ = Annotations(read_only=True, destructive=False, idempotent=True)
_IN_GUEST = ("The command is parsed without a shell and checked against the caller's command profile like "
             "execute_command (same refusals; commands that stop or roll back need confirmation), then run as "
             "an argv.")

STORAGE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_storage",
        title="List storage",
        description="Storage of the cluster as each node sees it (type, content types, used/total bytes, shared, "
        "active), or of one node; filter by content type (images, iso, backup, ...). One API call per node.",
        args_model=a.ListStorageToolArgs,
        result_model=x.StorageListResult,
        kind=WorkerKind.API,
        op=ApiOp.STORAGE_LIST,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_storage,
    ),
    ToolSpec(
        name="storage_content",
        title="List volumes on a storage",
        description="The volumes on one storage of one node (disk images, ISOs, templates, backups) with size and "
        "owner; filter by content type or vmid.",
        args_model=a.StorageContentToolArgs,
        result_model=x.StorageContentResult,
        kind=WorkerKind.API,
        op=ApiOp.STORAGE_CONTENT,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_storage_content,
    ),
)

TASK_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_tasks",
        title="List Proxmox tasks",
        description="Recent Proxmox tasks (newest first) cluster-wide or of one node, optionally only one guest's "
        "or only failed ones, with status and exit status. Use it to find why something failed.",
        args_model=a.ListTasksToolArgs,
        result_model=x.TaskListResult,
        kind=WorkerKind.API,
        op=ApiOp.TASK_LIST,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_tasks,
    ),
    ToolSpec(
        name="task_status",
        title="Status of one task",
        description="Whether a task (by UPID) is running or finished, its exit status and the last log lines "
        "(log_lines, default 20). One check; use wait_task to wait for the end.",
        args_model=a.TaskStatusToolArgs,
        result_model=t.TaskResult,
        kind=WorkerKind.API,
        op=ApiOp.TASK_STATUS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_task,
    ),
    ToolSpec(
        name="task_log",
        title="Log of one task",
        description="Lines of a task's log by UPID: a range (start, limit) or the last N (tail).",
        args_model=a.TaskLogToolArgs,
        result_model=x.TaskLogResult,
        kind=WorkerKind.API,
        op=ApiOp.TASK_LOG,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_task_log,
    ),
    ToolSpec(
        name="wait_task",
        title="Wait for a task to finish",
        description="Follow a task (by UPID) until it ends or timeout seconds pass, with progress notifications "
        "(status and latest log line) while waiting; returns its exit status and log tail. Cancelling stops the "
        "wait, not the task. Clients of the MCP tasks extension get a task to follow with tasks/get (tasks/cancel "
        "stops the following, not the Proxmox task). Use it after a tool returned a UPID without wait.",
        args_model=a.WaitTaskToolArgs,
        result_model=t.TaskResult,
        kind=WorkerKind.API,
        op=ApiOp.TASK_STATUS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_task,
        task=TaskMode.FOLLOWS,
    ),
)

CLUSTER_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="cluster_status",
        title="Cluster membership and quorum",
        description="The cluster's name, quorum and each member node's online state and address (corosync view). "
        "One API call.",
        args_model=a.ClusterStatusToolArgs,
        result_model=x.ClusterStatusResult,
        kind=WorkerKind.API,
        op=ApiOp.CLUSTER_STATUS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_cluster_status,
    ),
    ToolSpec(
        name="cluster_resources",
        title="All cluster resources",
        description="Every resource Proxmox tracks (guests, nodes, storage, SDN) in one list as Proxmox reports "
        "it; filter by type. Larger than the typed lists: prefer list_vms or list_storage when they suffice.",
        args_model=a.ClusterResourcesToolArgs,
        result_model=x.ClusterResourcesResult,
        kind=WorkerKind.API,
        op=ApiOp.CLUSTER_RESOURCES,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_cluster_resources,
    ),
    ToolSpec(
        name="node_network",
        title="Network interfaces of a node",
        description="A node's network configuration: bridges, bonds, VLANs and physical interfaces with "
        "addresses, gateways and bridge ports; filter by type.",
        args_model=a.NodeNetworkToolArgs,
        result_model=x.NodeNetworkResult,
        kind=WorkerKind.API,
        op=ApiOp.NODE_NETWORK,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_network,
    ),
)

GUEST_COMMAND_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="guest_exec",
        title="Run a command inside a VM",
        description="Run one command inside a running QEMU VM through its guest agent (qemu-guest-agent must run "
        f"in the VM) and return stdout, stderr and the exit code. {_IN_GUEST}",
        args_model=a.GuestExecToolArgs,
        result_model=x.GuestExecResult,
        kind=WorkerKind.API,
        op=ApiOp.GUEST_EXEC,
        scope=Scope.EXEC,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_guest_exec,
    ),
    ToolSpec(
        name="container_exec",
        title="Run a command inside a container",
        description="Run one command inside a running LXC container (pct exec over SSH on its node) and return "
        f"stdout, stderr and the exit code. {_IN_GUEST}",
        args_model=a.ContainerExecToolArgs,
        result_model=x.GuestExecResult,
        kind=WorkerKind.SSH,
        op=SshOp.CONTAINER_EXEC,
        scope=Scope.EXEC,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_guest_exec,
    ),
)
