"""The tools the gateway offers: names, schemas, scopes, annotations, which worker runs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind
from pydantic import BaseModel


@dataclass(frozen=True)
class Annotations:
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = True


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    args_model: type[BaseModel]
    result_model: type[BaseModel]
    kind: WorkerKind
    op: SshOp | ApiOp
    scope: Scope
    annotations: Annotations
    render: Callable[[dict[str, Any]], str]

    def input_schema(self) -> dict[str, Any]:
        return _schema(self.args_model)

    def output_schema(self) -> dict[str, Any]:
        return _schema(self.result_model)

    def required_scope(self, args: BaseModel) -> Scope:
        if isinstance(args, t.ProxmoxApiArgs) and args.method != "GET":
            return Scope.ADMIN
        return self.scope

    def idempotent_call(self, args: BaseModel) -> bool:
        if isinstance(args, t.ProxmoxApiArgs):
            return args.method == "GET"
        return self.annotations.idempotent


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.setdefault("type", "object")
    schema.pop("title", None)
    return schema


def _render_exec(r: dict[str, Any]) -> str:
    parts = [f"$ {r['command']}  (node {r['node']}, exit {r['exit_code']}, {r['duration_ms']:.0f} ms)"]
    if r["stdout"]:
        parts.append(r["stdout"].rstrip("\n"))
    if r["stderr"]:
        parts.append("[stderr]\n" + r["stderr"].rstrip("\n"))
    if r["truncated"]:
        parts.append("[output truncated at the size cap]")
    return "\n".join(parts)


def _fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(amount) < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def _render_list(r: dict[str, Any]) -> str:
    lines = [f"{r['count']} guest(s)"]
    lines.extend(
        f"{vm['vmid']:>6} {vm['type']:<4} {vm['status']:<8} {vm['node']:<10} {vm.get('name') or '-'}"
        f" mem {_fmt_bytes(vm.get('mem'))}/{_fmt_bytes(vm.get('maxmem'))}"
        + (" (template)" if vm.get("template") else "")
        for vm in r["vms"]
    )
    return "\n".join(lines)


def _render_vm_status(r: dict[str, Any]) -> str:
    return (
        f"{r['type']} {r['vmid']} ({r.get('name') or '-'}) on {r['node']}: {r['status']}"
        f"; cpu {r.get('cpu') or 0:.1%} of {r.get('cpus') or '?'}; mem {_fmt_bytes(r.get('mem'))}"
        f"/{_fmt_bytes(r.get('maxmem'))}; uptime {r.get('uptime') or 0} s"
    )


def _render_action(r: dict[str, Any]) -> str:
    head = f"{r['action']} {r['type']} {r['vmid']} on {r['node']}: task {r['upid']}"
    task = r.get("task")
    if not task:
        return head + " (started; not waited for)"
    tail = "\n".join(task.get("log_tail") or [])
    return f"{head}\nfinished: {task.get('exitstatus')}" + (f"\n{tail}" if tail else "")


def _render_nodes(r: dict[str, Any]) -> str:
    return "\n".join(
        f"{n['node']}: {n['status']}; cpu {(n.get('cpu') or 0):.1%} of {n.get('maxcpu') or '?'}; mem "
        f"{_fmt_bytes(n.get('mem'))}/{_fmt_bytes(n.get('maxmem'))}; uptime {n.get('uptime') or 0} s"
        for n in r["nodes"]
    )


def _render_api(r: dict[str, Any]) -> str:
    import json

    return f"{r['method']} {r['path']}\n" + json.dumps(r.get("data"), indent=1, sort_keys=True, default=str)[:20000]


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="execute_command",
        title="Run a command on a Proxmox host",
        description=(
            "Run one vetted shell command on a Proxmox VE host over SSH and return stdout, stderr and the exit "
            "code. Use it for host inspection the typed tools do not cover (logs, disks, services). The command "
            "is parsed without a shell and checked against the caller's command profile: pipes, redirections, "
            "substitutions and dangerous programs are refused. Prefer list_vms/vm_status/node_status for guest "
            "and node state. Costs one SSH round trip; output is capped (truncated=true when cut)."
        ),
        args_model=t.ExecuteCommandArgs,
        result_model=t.ExecResult,
        kind=WorkerKind.SSH,
        op=SshOp.EXEC,
        scope=Scope.EXEC,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=_render_exec,
    ),
    ToolSpec(
        name="list_vms",
        title="List VMs and containers",
        description=(
            "List every QEMU VM and LXC container of the cluster with node, status, CPU and memory use. "
            "Filter by node, type (qemu/lxc) or status. One API call; cheap."
        ),
        args_model=t.ListVmsArgs,
        result_model=t.ListVmsResult,
        kind=WorkerKind.API,
        op=ApiOp.LIST_VMS,
        scope=Scope.READ,
        annotations=Annotations(read_only=True, destructive=False, idempotent=True),
        render=_render_list,
    ),
    ToolSpec(
        name="vm_status",
        title="Status of one VM or container",
        description=(
            "Current status of one guest (QEMU VM or LXC container) by vmid: state, CPU, memory, disk, network, "
            "uptime. The node is looked up when omitted."
        ),
        args_model=t.VmStatusArgs,
        result_model=t.VmStatusResult,
        kind=WorkerKind.API,
        op=ApiOp.VM_STATUS,
        scope=Scope.READ,
        annotations=Annotations(read_only=True, destructive=False, idempotent=True),
        render=_render_vm_status,
    ),
    ToolSpec(
        name="vm_action",
        title="Start, stop or restart a guest",
        description=(
            "Change the power state of a VM or container: start, stop (hard), shutdown (clean), restart/reboot, "
            "reset, suspend, resume. Returns the Proxmox task id (UPID) at once; with wait=true it follows the "
            "task to its end (progress notifications while waiting) and returns its exit status and log tail. "
            "stop and reset can lose unsaved guest data."
        ),
        args_model=t.VmActionArgs,
        result_model=t.VmActionResult,
        kind=WorkerKind.API,
        op=ApiOp.VM_ACTION,
        scope=Scope.OPERATE,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=_render_action,
    ),
    ToolSpec(
        name="node_status",
        title="Status of cluster nodes",
        description=(
            "CPU, memory, disk, load and uptime of one Proxmox node, or of every node when none is given."
        ),
        args_model=t.NodeStatusArgs,
        result_model=t.NodeStatusResult,
        kind=WorkerKind.API,
        op=ApiOp.NODE_STATUS,
        scope=Scope.READ,
        annotations=Annotations(read_only=True, destructive=False, idempotent=True),
        render=_render_nodes,
    ),
    ToolSpec(
        name="proxmox_api",
        title="Call the Proxmox VE API",
        description=(
            "Call any Proxmox VE API path (below /api2/json) with GET, POST, PUT or DELETE and return its data. "
            "Use it for what the typed tools do not cover. GET needs read scope; POST/PUT/DELETE need admin "
            "scope and can change or destroy anything the worker's API token may touch."
        ),
        args_model=t.ProxmoxApiArgs,
        result_model=t.ProxmoxApiResult,
        kind=WorkerKind.API,
        op=ApiOp.PROXMOX_API,
        scope=Scope.READ,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=_render_api,
    ),
)

TOOLS_BY_NAME: dict[str, ToolSpec] = {spec.name: spec for spec in TOOLS}
