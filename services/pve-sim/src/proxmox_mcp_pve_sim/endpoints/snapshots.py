"""Snapshots of qemu VMs and containers: list, create, delete, rollback, read their config."""

from __future__ import annotations

import time
from typing import Any

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import find_guest, subdirs, typed_config
from proxmox_mcp_pve_sim.errors import TaskFailed, failed
from proxmox_mcp_pve_sim.model import Guest, GuestKind, Snapshot
from proxmox_mcp_pve_sim.tasks import Task


def snapshot_list(guest: Guest) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for snap in guest.snapshots:
        entry: dict[str, Any] = {"name": snap.name, "description": snap.description, "snaptime": snap.snaptime}
        if snap.parent:
            entry["parent"] = snap.parent
        if guest.kind == "qemu":
            entry["vmstate"] = snap.vmstate
        entries.append(entry)
    current: dict[str, Any] = {"name": "current", "description": "You are here!"}
    if guest.snapshots:
        current["parent"] = guest.snapshots[-1].name
    if guest.kind == "qemu":
        current["running"] = 1 if guest.running else 0
    entries.append(current)
    return entries


def _lock_args(kind: GuestKind, vmid: int) -> dict[str, str]:
    folder = "qemu-server" if kind == "qemu" else "lxc"
    return {"lock": f"{kind}-{vmid}", "lock_file": f"/var/lock/{folder}/lock-{vmid}.conf"}


def _task_type(kind: GuestKind, verb: str) -> str:
    return ("qm" if kind == "qemu" else "vz") + verb


def list_snapshots(call: Call, kind: GuestKind) -> list[dict[str, Any]]:
    return snapshot_list(find_guest(call, kind))


def create_snapshot(call: Call, kind: GuestKind) -> str:
    sim = call.sim
    guest = find_guest(call, kind)
    name = call["snapname"]
    if name == "current":
        raise failed("invalid snapshot name 'current'")
    if any(s.name == name for s in guest.snapshots):
        raise failed(f"snapshot name '{name}' already used")
    vmid, node = guest.vmid, guest.node
    description = str(call.get("description", ""))
    vmstate = 1 if call.get("vmstate") and guest.running else 0

    async def body(task: Task) -> None:
        current = sim.cluster.guest(node, vmid, kind)
        if current is None:
            raise TaskFailed(f"Configuration file '{guest.config_path()}' does not exist")
        if any(s.name == name for s in current.snapshots):
            raise TaskFailed(f"snapshot name '{name}' already used")
        task.write(
            f"snapshotting 'drive-scsi0' (local-lvm:vm-{vmid}-disk-0)"
            if kind == "qemu"
            else f"create snapshot '{name}' of CT {vmid}"
        )
        await task.work()
        parent = current.snapshots[-1].name if current.snapshots else None
        current.snapshots.append(Snapshot(name, description, int(time.time()), parent, vmstate, dict(current.config)))

    return sim.tasks.start(
        node, _task_type(kind, "snapshot"), str(vmid), call.caller, body, **_lock_args(kind, vmid)
    ).upid


def _find_snapshot(guest: Guest, name: str) -> Snapshot:
    snap = next((s for s in guest.snapshots if s.name == name), None)
    if snap is None:
        raise failed(f"snapshot '{name}' does not exist")
    return snap


def delete_snapshot(call: Call, kind: GuestKind) -> str:
    sim = call.sim
    guest = find_guest(call, kind)
    name = call["snapname"]
    vmid, node = guest.vmid, guest.node

    async def body(task: Task) -> None:
        current = sim.cluster.guest(node, vmid, kind)
        if current is None or not any(s.name == name for s in current.snapshots):
            raise TaskFailed(f"snapshot '{name}' does not exist")
        await task.work()
        removed = next(s for s in current.snapshots if s.name == name)
        for snap in current.snapshots:
            if snap.parent == name:
                snap.parent = removed.parent
        current.snapshots = [s for s in current.snapshots if s.name != name]

    return sim.tasks.start(
        node, _task_type(kind, "delsnapshot"), str(vmid), call.caller, body, **_lock_args(kind, vmid)
    ).upid


def rollback_snapshot(call: Call, kind: GuestKind) -> str:
    sim = call.sim
    guest = find_guest(call, kind)
    name = call["snapname"]
    vmid, node = guest.vmid, guest.node
    start_after = bool(call.get("start"))

    async def body(task: Task) -> None:
        current = sim.cluster.guest(node, vmid, kind)
        snap = next((s for s in current.snapshots if s.name == name), None) if current else None
        if current is None or snap is None:
            raise TaskFailed(f"snapshot '{name}' does not exist")
        task.write(f"rolling back {'VM' if kind == 'qemu' else 'CT'} {vmid} to snapshot '{name}'")
        await task.work()
        current.config = dict(snap.config)
        keep_running = kind == "qemu" and snap.vmstate == 1
        if not keep_running:
            current.status, current.paused, current.started_at, current.pid = "stopped", False, None, None
        if start_after and not current.running:
            current.status, current.started_at, current.pid = "running", time.time(), 5000 + vmid

    return sim.tasks.start(
        node, _task_type(kind, "rollback"), str(vmid), call.caller, body, **_lock_args(kind, vmid)
    ).upid


def snapshot_index(call: Call, kind: GuestKind) -> list[dict[str, str]]:
    _find_snapshot(find_guest(call, kind), call["snapname"])
    return subdirs("config", "rollback")


def snapshot_config(call: Call, kind: GuestKind) -> dict[str, Any]:
    guest = find_guest(call, kind)
    snap = _find_snapshot(guest, call["snapname"])
    config = typed_config(kind, snap.config)
    config.update({"snaptime": snap.snaptime, "description": snap.description})
    if snap.parent:
        config["parent"] = snap.parent
    return config
