"""qemu and lxc guests: lists, status, power actions, config, create and destroy."""

from __future__ import annotations

import random
import time
from typing import Any

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import find_guest, kind_label, subdirs, typed_config
from proxmox_mcp_pve_sim.endpoints.restore import restore
from proxmox_mcp_pve_sim.errors import TaskFailed, failed
from proxmox_mcp_pve_sim.model import Guest, GuestKind, Volume, mac_address
from proxmox_mcp_pve_sim.tasks import Task

RUNNING_MACHINE = "pc-i440fx-9.2+pve1"
RUNNING_QEMU = "9.2.0"


def guest_summary(guest: Guest) -> dict[str, Any]:
    """The fields every listing of a guest shares (vmlist, status/current, resources)."""
    entry: dict[str, Any] = {
        "vmid": guest.vmid,
        "name": guest.name,
        "status": guest.status,
        "cpus": guest.cpus,
        "cpu": guest.cpu,
        "maxmem": guest.maxmem,
        "mem": guest.mem,
        "maxdisk": guest.maxdisk,
        "uptime": guest.uptime,
        **guest.counters(),
    }
    if guest.kind == "lxc":
        entry["disk"] = guest.disk_used if guest.running else 0
        entry["maxswap"] = int(guest.config.get("swap", "0") or 0) * 1024 * 1024
        entry["type"] = "lxc"
    else:
        entry["qmpstatus"] = ("paused" if guest.paused else "running") if guest.running else "stopped"
        if guest.running:
            entry["pid"] = guest.pid
            entry["running-machine"] = RUNNING_MACHINE
            entry["running-qemu"] = RUNNING_QEMU
    if guest.template:
        entry["template"] = 1
    if guest.config.get("tags"):
        entry["tags"] = guest.config["tags"]
    if guest.lock:
        entry["lock"] = guest.lock
    return entry


def _visible(call: Call, guest: Guest) -> bool:
    return "VM.Audit" in call.sim.access.privileges(call.caller, f"/vms/{guest.vmid}")


def _list(call: Call, kind: GuestKind) -> list[dict[str, Any]]:
    return [guest_summary(g) for g in call.sim.cluster.guests_on(call["node"], kind) if _visible(call, g)]


def _status_current(call: Call, kind: GuestKind) -> dict[str, Any]:
    guest = find_guest(call, kind)
    entry = guest_summary(guest)
    entry["ha"] = {"managed": 0}
    if kind == "qemu" and guest.agent_enabled:
        entry["agent"] = 1
    return entry


def qemu_list(call: Call) -> list[dict[str, Any]]:
    return _list(call, "qemu")


def lxc_list(call: Call) -> list[dict[str, Any]]:
    return _list(call, "lxc")


def qemu_index(call: Call) -> list[dict[str, str]]:
    find_guest(call, "qemu")
    return subdirs(
        "config",
        "pending",
        "status",
        "unlink",
        "vncproxy",
        "termproxy",
        "migrate",
        "resize",
        "move",
        "rrd",
        "rrddata",
        "monitor",
        "agent",
        "snapshot",
        "spiceproxy",
        "sendkey",
        "firewall",
        "mtunnel",
        "remote_migrate",
    )


def lxc_index(call: Call) -> list[dict[str, str]]:
    find_guest(call, "lxc")
    return subdirs(
        "config",
        "pending",
        "status",
        "vncproxy",
        "termproxy",
        "vncwebsocket",
        "spiceproxy",
        "migrate",
        "clone",
        "rrd",
        "rrddata",
        "firewall",
        "snapshot",
        "resize",
        "interfaces",
    )


def qemu_status_index(call: Call) -> list[dict[str, str]]:
    find_guest(call, "qemu")
    return subdirs("current", "start", "stop", "reset", "shutdown", "suspend", "reboot")


def lxc_status_index(call: Call) -> list[dict[str, str]]:
    find_guest(call, "lxc")
    return subdirs("current", "start", "stop", "shutdown", "suspend", "resume", "reboot")


def qemu_status(call: Call) -> dict[str, Any]:
    return _status_current(call, "qemu")


def lxc_status(call: Call) -> dict[str, Any]:
    return _status_current(call, "lxc")


# --- config ------------------------------------------------------------------------------------


def _read_config(call: Call, kind: GuestKind) -> dict[str, Any]:
    guest = find_guest(call, kind)
    config = guest.config
    snapname = call.get("snapshot")
    if snapname:
        snap = next((s for s in guest.snapshots if s.name == snapname), None)
        if snap is None:
            raise failed(f"snapshot '{snapname}' does not exist")
        config = snap.config
    result = typed_config(kind, config)
    if guest.lock and not snapname:
        result["lock"] = guest.lock
    result["digest"] = guest.digest()
    return result


def qemu_config(call: Call) -> dict[str, Any]:
    return _read_config(call, "qemu")


def lxc_config(call: Call) -> dict[str, Any]:
    return _read_config(call, "lxc")


def qemu_pending(call: Call) -> list[dict[str, Any]]:
    guest = find_guest(call, "qemu")
    return [{"key": key, "value": value} for key, value in sorted(guest.config.items())]


def lxc_pending(call: Call) -> list[dict[str, Any]]:
    guest = find_guest(call, "lxc")
    return [{"key": key, "value": value} for key, value in sorted(guest.config.items())]


CONFIG_META = {"node", "vmid", "delete", "digest", "revert", "skiplock", "force", "background_delay"}


def apply_config(call: Call, guest: Guest) -> None:
    """Apply a validated config change; raises 500 on a stale digest like a node does."""
    digest = call.get("digest")
    if digest and digest != guest.digest():
        raise failed("detected modified configuration - file changed by other user? Try again.")
    if guest.lock and not call.get("skiplock"):
        raise failed(f"{kind_label(guest.kind)} is locked ({guest.lock})")
    for key in _split(call.get("delete", "")) + _split(call.get("revert", "")):
        guest.config.pop(key, None)
    for key, value in call.params.items():
        if key in CONFIG_META or value is None:
            continue
        guest.config[key] = str(value)


def _split(text: str) -> list[str]:
    return [part for part in text.replace(";", ",").replace(" ", ",").split(",") if part]


def qemu_config_async(call: Call) -> str:
    guest = find_guest(call, "qemu")
    apply_config(call, guest)
    node, vmid = guest.node, guest.vmid

    async def body(task: Task) -> None:
        task.write(f"update VM {vmid}: {_describe_change(call)}")
        await task.work(0.2)

    return call.sim.tasks.start(
        node,
        "qmconfig",
        str(vmid),
        call.caller,
        body,
        lock=f"qemu-{vmid}",
        lock_file=f"/var/lock/qemu-server/lock-{vmid}.conf",
    ).upid


def qemu_config_sync(call: Call) -> None:
    apply_config(call, find_guest(call, "qemu"))


def lxc_config_set(call: Call) -> None:
    apply_config(call, find_guest(call, "lxc"))


def _describe_change(call: Call) -> str:
    return " ".join(f"-{k} {v}" for k, v in sorted(call.params.items()) if k not in {"node", "vmid", "digest"})


# --- create / destroy --------------------------------------------------------------------------


def _disk_spec(spec: str, vmid: int) -> tuple[str, int]:
    """`local-lvm:32` (allocate 32 GiB) becomes `local-lvm:vm-100-disk-0,size=32G`."""
    volume, _, options = spec.partition(",")
    storage, sep, size = volume.partition(":")
    if sep and size.isdigit():
        rest = f",{options}" if options else ""
        return f"{storage}:vm-{vmid}-disk-0{rest},size={size}G", int(size)
    return spec, 0


def _check_new_vmid(call: Call, vmid: int) -> None:
    existing = call.sim.cluster.guests.get(vmid)
    if existing is not None:
        kind = kind_label(existing.kind)
        raise failed(f"unable to create {kind} {vmid} - {kind} {vmid} already exists on node '{existing.node}'")


def qemu_create(call: Call) -> str:
    vmid = call["vmid"]
    if call.get("archive"):
        return restore(call, "qemu", str(call["archive"]), overwrite=bool(call.get("force")))
    _check_new_vmid(call, vmid)
    config: dict[str, str] = {"memory": "2048", "cores": "1", "sockets": "1", "ostype": "l26"}
    for key, value in call.params.items():
        if key in {"node", "vmid", "start", "pool", "storage", "unique", "force", "archive", "live-restore"}:
            continue
        config[key] = str(value)
    for key in [k for k in config if k.startswith(("scsi", "virtio", "sata", "ide")) and k[-1].isdigit()]:
        config[key], _ = _disk_spec(config[key], vmid)
    for key in [k for k in config if k.startswith("net") and k[3:].isdigit()]:
        model, sep, rest = config[key].partition(",")
        if "=" not in model:
            config[key] = f"{model}={mac_address(random.Random(vmid))}{sep}{rest}"
    return _create(call, "qemu", vmid, config)


def lxc_create(call: Call) -> str:
    vmid = call["vmid"]
    template = call["ostemplate"]
    if call.get("restore"):
        return restore(call, "lxc", str(template), overwrite=bool(call.get("force")))
    _check_new_vmid(call, vmid)
    config: dict[str, str] = {
        "arch": "amd64",
        "memory": "512",
        "swap": "512",
        "cores": "1",
        "ostype": "debian",
        "hostname": f"CT{vmid}",
        "rootfs": f"local-lvm:vm-{vmid}-disk-0,size=4G",
    }
    for key, value in call.params.items():
        if key in {
            "node",
            "vmid",
            "start",
            "pool",
            "storage",
            "ostemplate",
            "password",
            "ssh-public-keys",
            "force",
            "restore",
            "unique",
            "ignore-unpack-errors",
            "bwlimit",
            "ha-managed",
        }:
            continue
        config[key] = str(value)
    if "rootfs" in call.params:
        config["rootfs"], _ = _disk_spec(str(call["rootfs"]), vmid)
    node = call.sim.cluster.nodes[call["node"]]
    if not any(v.volid == template for s in node.storages.values() for v in s.volumes):
        raise failed(f"volume '{template}' does not exist")
    return _create(call, "lxc", vmid, config)


def _create(call: Call, kind: GuestKind, vmid: int, config: dict[str, str]) -> str:
    sim, node = call.sim, call["node"]
    guest = Guest(
        vmid=vmid,
        kind=kind,
        node=node,
        config=config,
        lock="create",
        agent_installed=False,
        cpu_load=0.02,
        mem_fraction=0.3,
        disk_used=256 * 1024 * 1024,
    )
    sim.cluster.guests[vmid] = guest
    start_after = bool(call.get("start"))

    async def body(task: Task) -> None:
        task.write(f"creating {'VM' if kind == 'qemu' else 'CT'} {vmid} on node '{node}'")
        await task.work()
        current = sim.cluster.guests.get(vmid)
        if current is not guest:
            raise TaskFailed(f"unable to create {kind_label(kind)} {vmid} - configuration was removed")
        guest.lock = None
        storage = sim.cluster.nodes[node].storages.get("local-lvm")
        if storage is not None and guest.maxdisk:
            storage.volumes.append(
                Volume(
                    f"local-lvm:vm-{vmid}-disk-0",
                    "images" if kind == "qemu" else "rootdir",
                    "raw",
                    guest.maxdisk,
                    int(time.time()),
                    vmid=vmid,
                    used=0,
                )
            )
        if start_after:
            guest.status, guest.started_at, guest.pid = "running", time.time(), 4000 + vmid

    type_ = "qmcreate" if kind == "qemu" else "vzcreate"
    return sim.tasks.start(
        node, type_, str(vmid), call.caller, body, lock=f"{kind}-{vmid}", lock_file=_lock_file(kind, vmid)
    ).upid


def _lock_file(kind: GuestKind, vmid: int) -> str:
    return f"/var/lock/{'qemu-server' if kind == 'qemu' else 'lxc'}/lock-{vmid}.conf"


def _running_destroy_message(kind: GuestKind, vmid: int) -> str:
    if kind == "qemu":
        return f"VM {vmid} is running - destroy failed"
    return f"unable to destroy CT {vmid} - container is running"


def _destroy(call: Call, kind: GuestKind) -> str:
    sim = call.sim
    guest = find_guest(call, kind)
    if guest.running and not (kind == "lxc" and call.get("force")):
        raise failed(_running_destroy_message(kind, guest.vmid))
    if guest.config.get("protection") == "1":
        raise failed(f"can't remove {kind_label(kind)} {guest.vmid} - protection mode enabled")
    vmid, node = guest.vmid, guest.node

    async def body(task: Task) -> None:
        current = sim.cluster.guest(node, vmid, kind)
        if current is None:
            raise TaskFailed(f"Configuration file '{guest.config_path()}' does not exist")
        if current.running and kind == "qemu":
            raise TaskFailed(_running_destroy_message(kind, vmid))
        task.write(f'  Logical volume "vm-{vmid}-disk-0" successfully removed.')
        await task.work()
        del sim.cluster.guests[vmid]
        for storage in sim.cluster.nodes[node].storages.values():
            storage.volumes = [v for v in storage.volumes if v.vmid != vmid or v.content == "backup"]
        sim.agent_processes.pop(vmid, None)

    type_ = "qmdestroy" if kind == "qemu" else "vzdestroy"
    return sim.tasks.start(
        node, type_, str(vmid), call.caller, body, lock=f"{kind}-{vmid}", lock_file=_lock_file(kind, vmid)
    ).upid


def qemu_destroy(call: Call) -> str:
    return _destroy(call, "qemu")


def lxc_destroy(call: Call) -> str:
    return _destroy(call, "lxc")


def lxc_interfaces(call: Call) -> list[dict[str, Any]]:
    guest = find_guest(call, "lxc")
    if not guest.running:
        raise failed(f"CT {guest.vmid} not running")
    mac = "00:00:00:00:00:00"
    for part in guest.config.get("net0", "").split(","):
        if part.startswith("hwaddr="):
            mac = part[7:]
    ip = f"192.168.100.{100 + guest.vmid % 100}"
    return [
        {
            "name": "lo",
            "hwaddr": "00:00:00:00:00:00",
            "hardware-address": "00:00:00:00:00:00",
            "inet": "127.0.0.1/8",
            "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8}],
        },
        {
            "name": "eth0",
            "hwaddr": mac,
            "hardware-address": mac,
            "inet": f"{ip}/24",
            "ip-addresses": [{"ip-address": ip, "ip-address-type": "inet", "prefix": 24}],
        },
    ]
