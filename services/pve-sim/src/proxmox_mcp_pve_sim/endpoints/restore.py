"""Restoring a backup, which Proxmox does as a create: `POST /nodes/{node}/qemu` with `archive` (and `force` to
overwrite an existing VM), `POST /nodes/{node}/lxc` with `ostemplate` and `restore=1`. The guest to overwrite
must be stopped; the task brings back the configuration inside the archive."""

from __future__ import annotations

import random
import re
import time

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import kind_label
from proxmox_mcp_pve_sim.errors import TaskFailed, failed
from proxmox_mcp_pve_sim.model import Guest, GuestKind, Storage, Volume, mac_address
from proxmox_mcp_pve_sim.tasks import Task

_DISK_KEY = re.compile(r"^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$|^rootfs$|^mp\d+$")
_MAC = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


def _archive(call: Call, volid: str) -> tuple[Storage, Volume]:
    node = call.sim.cluster.nodes[call["node"]]
    storage = node.storages.get(volid.split(":", 1)[0])
    volume = next((v for v in storage.volumes if v.volid == volid), None) if storage else None
    if storage is None or volume is None:
        raise failed(f"volume '{volid}' does not exist")
    if volume.content != "backup":
        raise failed(f"volume '{volid}' is not a backup archive")
    return storage, volume


def _existing(call: Call, kind: GuestKind, vmid: int, overwrite: bool) -> Guest | None:
    label = kind_label(kind)
    guest = call.sim.cluster.guests.get(vmid)
    if guest is None:
        return None
    if guest.node != call["node"] or guest.kind != kind or not overwrite:
        other = kind_label(guest.kind)
        raise failed(f"unable to restore {label} {vmid} - {other} {vmid} already exists on node '{guest.node}'")
    if guest.running:
        raise failed(f"unable to restore {label} {vmid} - {label} is running")
    if guest.lock:
        raise failed(f"unable to restore {label} {vmid} - {label} is locked ({guest.lock})")
    if guest.config.get("protection") == "1":
        raise failed(f"unable to restore {label} {vmid} - protection mode enabled")
    return guest


def _restored_config(volume: Volume, vmid: int, target_storage: str | None, unique: bool) -> dict[str, str]:
    config = dict(volume.config or {})
    source_vmid = volume.vmid
    for key in [k for k in config if _DISK_KEY.match(k)]:
        spec = config[key]
        if source_vmid is not None:
            spec = spec.replace(f"vm-{source_vmid}-disk", f"vm-{vmid}-disk")
        if target_storage and ":" in spec.split(",")[0] and not spec.startswith("none"):
            spec = f"{target_storage}:{spec.split(':', 1)[1]}"
        config[key] = spec
    if unique:
        rng = random.Random(vmid * 7919 + int(time.time()))
        for key in [k for k in config if k.startswith("net") and k[3:].isdigit()]:
            config[key] = _MAC.sub(mac_address(rng), config[key], count=1)
    return config


def _add_disk(storages: dict[str, Storage], name: str, guest: Guest, kind: GuestKind, size: int) -> None:
    storage = storages.get(name)
    volid = f"{name}:vm-{guest.vmid}-disk-0"
    if storage is not None and not any(v.volid == volid for v in storage.volumes):
        content = "images" if kind == "qemu" else "rootdir"
        storage.volumes.append(Volume(volid, content, "raw", size * 4, int(time.time()), vmid=guest.vmid, used=0))


def restore(call: Call, kind: GuestKind, volid: str, overwrite: bool) -> str:
    sim, node, vmid = call.sim, call["node"], call["vmid"]
    label = kind_label(kind)
    storage, volume = _archive(call, volid)
    if volume.subtype and volume.subtype != kind:
        what = "a VM" if volume.subtype == "qemu" else "a container"
        raise failed(f"unable to restore {label} {vmid} - archive '{volid}' is the backup of {what}")
    target = call.get("storage")
    if target is not None:
        target_storage = sim.cluster.nodes[node].storages.get(target)
        if target_storage is None:
            raise failed(f"storage '{target}' does not exist")
        wanted = "images" if kind == "qemu" else "rootdir"
        if wanted not in target_storage.content.split(","):
            raise failed(f"storage '{target}' does not support {wanted} (content types: {target_storage.content})")
    existing = _existing(call, kind, vmid, overwrite)
    config = _restored_config(volume, vmid, target, bool(call.get("unique")))
    guest = existing or Guest(vmid=vmid, kind=kind, node=node, config={}, agent_installed=True, cpu_load=0.03,
                              mem_fraction=0.35, disk_used=volume.size)
    guest.lock = "create"
    sim.cluster.guests[vmid] = guest
    start_after = bool(call.get("start"))

    async def body(task: Task) -> None:
        if storage.type == "pbs":
            task.write(f"restore proxmox backup image: {volid.split(':', 1)[1]}")
        elif kind == "qemu":
            task.write(f"restore vma archive: zstd -q -d -c {storage.path or ''}/dump/{volid.split('/', 1)[1]} | "
                       f"vma extract -v -r /var/tmp/vzdumptmp{task.pid}.fifo - /var/tmp/vzdumptmp{task.pid}")
        else:
            task.write(f"recovering backed-up configuration from '{volid}'")
        for percent in (25, 50, 75, 100):
            await task.work(0.22)
            task.write(f"progress {percent}% (read {volume.size * percent // 100} bytes, duration "
                       f"{max(1, int(percent / 25))} sec)")
        if sim.cluster.guests.get(vmid) is not guest:
            raise TaskFailed(f"unable to restore {label} {vmid} - configuration was removed")
        task.write("rescan volumes...")
        if existing is None:
            _add_disk(sim.cluster.nodes[node].storages, target or "local-lvm", guest, kind, volume.size)
        guest.config = config
        guest.snapshots = []
        guest.lock = None
        if start_after:
            guest.status, guest.started_at, guest.pid = "running", time.time(), 6000 + vmid
            task.write(f"starting {label} {vmid}")

    type_ = "qmrestore" if kind == "qemu" else "vzrestore"
    folder = "qemu-server" if kind == "qemu" else "lxc"
    lock_file = f"/var/lock/{folder}/lock-{vmid}.conf"
    return sim.tasks.start(node, type_, str(vmid), call.caller, body, lock=f"{kind}-{vmid}", lock_file=lock_file).upid
