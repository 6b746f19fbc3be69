"""Snapshots of VMs and containers: list, create, delete, roll back (the last three start a Proxmox task)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_api_worker.operations import GUEST_LABEL, GUEST_NOUN, Budget, ClusterOperations, Guest
from proxmox_mcp_api_worker.values import as_int, as_str, flag, seg

CURRENT = "current"
"""Proxmox lists the guest's present state as a pseudo-snapshot named 'current'."""


def _base(guest: Guest) -> str:
    return f"/nodes/{seg(guest.node)}/{guest.type}/{guest.vmid}/snapshot"


async def _entries(ops: ClusterOperations, guest: Guest, budget: Budget) -> list[Mapping[str, Any]]:
    data = await ops.call(budget, "GET", _base(guest))
    if not is_array(data):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox's snapshot list of {guest.vmid} is not a list")
    return [entry for entry in data if is_object(entry) and entry.get("name")]


async def snapshot_list(ops: ClusterOperations, args: x.ListSnapshotsArgs, budget: Budget) -> x.SnapshotListResult:
    guest = await ops.locate(args.vmid, args.node, budget, args.type)
    entries = await _entries(ops, guest, budget)
    current = next((e for e in entries if e["name"] == CURRENT), None)
    snapshots = [
        x.Snapshot(name=str(e["name"]), description=as_str(e.get("description")) or None,
                   snaptime=as_int(e.get("snaptime")), parent=as_str(e.get("parent")),
                   vmstate=flag(e.get("vmstate")) if guest.type == "qemu" else None)
        for e in entries if e["name"] != CURRENT
    ]
    snapshots.sort(key=lambda s: (s.snaptime or 0, s.name))
    return x.SnapshotListResult(vmid=guest.vmid, node=guest.node, type=guest.type, snapshots=snapshots,
                                current_parent=as_str(current.get("parent")) if current else None)


def _started(guest: Guest, upid: Any, action: str, name: str) -> x.TaskStartResult:
    if not isinstance(upid, str) or not upid.startswith("UPID:"):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox accepted {action} of {guest.vmid} but returned no "
                             "task id")
    return x.TaskStartResult(upid=upid, node=guest.node, action=action, vmid=guest.vmid, type=guest.type,
                             snapshot=name, waited=False)


async def _existing(ops: ClusterOperations, guest: Guest, name: str, budget: Budget) -> None:
    """A clear not_found before starting a task that would only fail inside Proxmox."""
    names = [str(e["name"]) for e in await _entries(ops, guest, budget) if e["name"] != CURRENT]
    if name not in names:
        known = ", ".join(names) or "none"
        raise ServiceFailure(ErrorCode.NOT_FOUND, f"{GUEST_LABEL[guest.type]} {guest.vmid} has no snapshot "
                             f"{name!r} (snapshots: {known})", details={"vmid": guest.vmid, "snapshot": name})


async def snapshot_create(ops: ClusterOperations, args: x.SnapshotCreateArgs, budget: Budget) -> x.TaskStartResult:
    if args.name == CURRENT:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "'current' is reserved by Proxmox; choose another name")
    guest = await ops.locate(args.vmid, args.node, budget, args.type)
    if args.vmstate and guest.type != "qemu":
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{args.vmid} is {GUEST_NOUN[guest.type]}: only QEMU VMs "
                             "can save their RAM state (vmstate)")
    params: dict[str, Any] = {"snapname": args.name}
    if args.description:
        params["description"] = args.description
    if args.vmstate:
        params["vmstate"] = 1
    upid = await ops.call(budget, "POST", _base(guest), params)
    return _started(guest, upid, "snapshot_create", args.name)


async def snapshot_delete(ops: ClusterOperations, args: x.SnapshotDeleteArgs, budget: Budget) -> x.TaskStartResult:
    guest = await ops.locate(args.vmid, args.node, budget, args.type)
    await _existing(ops, guest, args.name, budget)
    params = {"force": 1} if args.force else None
    upid = await ops.call(budget, "DELETE", f"{_base(guest)}/{seg(args.name)}", params)
    return _started(guest, upid, "snapshot_delete", args.name)


async def snapshot_rollback(ops: ClusterOperations, args: x.SnapshotRollbackArgs,
                            budget: Budget) -> x.TaskStartResult:
    guest = await ops.locate(args.vmid, args.node, budget, args.type)
    await _existing(ops, guest, args.name, budget)
    params = {"start": 1} if args.start else None
    upid = await ops.call(budget, "POST", f"{_base(guest)}/{seg(args.name)}/rollback", params)
    return _started(guest, upid, "snapshot_rollback", args.name)
