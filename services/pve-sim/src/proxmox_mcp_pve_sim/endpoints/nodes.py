"""Per-node endpoints: status, version, time, dns, network, storage and its content."""

from __future__ import annotations

import time
from typing import Any

from proxmox_mcp_contracts.pve_schema import split_list

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import subdirs
from proxmox_mcp_pve_sim.errors import failed
from proxmox_mcp_pve_sim.model import (
    KERNEL_RELEASE,
    KERNEL_VERSION,
    PVE_RELEASE,
    PVE_REPOID,
    PVE_VERSION,
    NetIface,
    Node,
    Storage,
)


def pveversion() -> str:
    return f"pve-manager/{PVE_VERSION}/{PVE_REPOID}"


def load_averages(node: Node) -> list[str]:
    return [f"{node.load:.2f}", f"{node.load * 0.9:.2f}", f"{node.load * 0.8:.2f}"]


def node_status(call: Call) -> dict[str, Any]:
    sim = call.sim
    node = sim.cluster.nodes[call["node"]]
    used = sim.cluster.node_mem_used(node.name)
    root = node.storages["local"]
    sockets = 2 if node.maxcpu >= 24 else 1
    return {
        "uptime": node.uptime,
        "cpu": sim.cluster.node_cpu(node.name),
        "wait": 0.0012,
        "idle": 0,
        "loadavg": load_averages(node),
        "pveversion": pveversion(),
        "kversion": f"Linux {KERNEL_RELEASE} {KERNEL_VERSION}",
        "cpuinfo": {
            "model": node.cpu_model,
            "sockets": sockets,
            "cores": node.maxcpu // (2 * sockets),
            "cpus": node.maxcpu,
            "mhz": "2400.000",
            "hvm": "1",
            "flags": "fpu vme de pse tsc msr pae mce",
            "user_hz": 100,
        },
        "memory": {
            "total": node.maxmem,
            "used": used,
            "free": node.maxmem - used,
            "available": node.maxmem - used + node.maxmem // 50,
        },
        "swap": {"total": 8 * 1024**3, "used": 0, "free": 8 * 1024**3},
        "rootfs": {
            "total": root.total,
            "used": root.used,
            "free": root.total - root.used,
            "avail": root.total - root.used - root.total // 20,
        },
        "ksm": {"shared": 0},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {
            "sysname": "Linux",
            "release": KERNEL_RELEASE,
            "version": KERNEL_VERSION,
            "machine": "x86_64",
        },
    }


def node_version(call: Call) -> dict[str, Any]:
    return {"version": PVE_VERSION, "release": PVE_RELEASE, "repoid": PVE_REPOID}


def node_time(call: Call) -> dict[str, Any]:
    now = int(time.time())
    return {"time": now, "localtime": now, "timezone": "UTC"}


def node_dns(call: Call) -> dict[str, Any]:
    return {"search": "sim.local", "dns1": "192.168.100.1", "dns2": "1.1.1.1"}


def iface_entry(iface: NetIface) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "iface": iface.iface,
        "type": iface.type,
        "method": iface.method,
        "method6": "manual",
        "families": ["inet"],
        "active": iface.active,
        "autostart": iface.autostart,
        "priority": {"eno1": 3, "eno2": 4}.get(iface.iface, 5),
    }
    if iface.type == "eth":
        entry["exists"] = 1
    if iface.address and iface.netmask:
        bits = sum(bin(int(octet)).count("1") for octet in iface.netmask.split("."))
        entry.update({"address": iface.address, "netmask": iface.netmask, "cidr": f"{iface.address}/{bits}"})
    if iface.gateway:
        entry["gateway"] = iface.gateway
    if iface.type == "bridge":
        entry.update({"bridge_ports": iface.bridge_ports or "", "bridge_stp": "off", "bridge_fd": "0"})
    return entry


_TYPE_FILTERS = {"any_bridge": {"bridge", "OVSBridge"}, "any_local_bridge": {"bridge", "OVSBridge"}}


def node_network(call: Call) -> list[dict[str, Any]]:
    node = call.sim.cluster.nodes[call["node"]]
    wanted = call.get("type")
    allowed = _TYPE_FILTERS.get(wanted, {wanted}) if wanted and wanted != "include_sdn" else None
    return [iface_entry(i) for i in node.network if allowed is None or i.type in allowed]


def node_network_iface(call: Call) -> dict[str, Any]:
    node = call.sim.cluster.nodes[call["node"]]
    for iface in node.network:
        if iface.iface == call["iface"]:
            return iface_entry(iface)
    raise failed(f"interface '{call['iface']}' does not exist")


def _storage(call: Call) -> tuple[Node, Storage]:
    node = call.sim.cluster.nodes[call["node"]]
    storage = node.storages.get(call["storage"])
    if storage is None:
        raise failed(f"storage '{call['storage']}' does not exist")
    return node, storage


def storage_status(storage: Storage) -> dict[str, Any]:
    used = storage.used
    return {
        "storage": storage.storage,
        "type": storage.type,
        "content": storage.content,
        "active": 1,
        "enabled": 1,
        "shared": storage.shared,
        "total": storage.total,
        "used": used,
        "avail": storage.total - used,
        "used_fraction": round(used / storage.total, 6),
    }


def _storage_visible(call: Call, storage: Storage) -> bool:
    privs = call.sim.access.privileges(call.caller, f"/storage/{storage.storage}")
    return bool(privs & {"Datastore.Audit", "Datastore.AllocateSpace"})


def node_storage(call: Call) -> list[dict[str, Any]]:
    node = call.sim.cluster.nodes[call["node"]]
    content = set(split_list(call.get("content", "")))
    only = call.get("storage")
    entries: list[dict[str, Any]] = []
    for storage in node.storages.values():
        if only and storage.storage != only:
            continue
        if content and not content & set(storage.content.split(",")):
            continue
        if not _storage_visible(call, storage):
            continue
        entry = storage_status(storage)
        if call.get("format") and storage.type == "lvmthin":
            entry["formats"] = {"default": "raw", "supported": ["raw"]}
        entries.append(entry)
    return entries


def node_storage_index(call: Call) -> list[dict[str, str]]:
    _storage(call)
    return subdirs(
        "content",
        "download-url",
        "file-restore",
        "import-metadata",
        "prunebackups",
        "rrd",
        "rrddata",
        "status",
        "upload",
    )


def node_storage_status(call: Call) -> dict[str, Any]:
    _, storage = _storage(call)
    status = storage_status(storage)
    del status["storage"], status["used_fraction"]
    return status


def node_storage_content(call: Call) -> list[dict[str, Any]]:
    _, storage = _storage(call)
    content, vmid = call.get("content"), call.get("vmid")
    entries: list[dict[str, Any]] = []
    for volume in storage.volumes:
        if content and volume.content != content:
            continue
        if vmid is not None and volume.vmid != vmid:
            continue
        entry: dict[str, Any] = {
            "volid": volume.volid,
            "content": volume.content,
            "format": volume.format,
            "size": volume.size,
            "ctime": volume.ctime,
        }
        if volume.vmid is not None:
            entry["vmid"] = volume.vmid
        if volume.used is not None:
            entry["used"] = volume.used
        if volume.notes:
            entry["notes"] = volume.notes
        if volume.content == "backup":
            entry["subtype"] = volume.subtype or ("qemu" if "-qemu-" in volume.volid else "lxc")
            entry["protected"] = volume.protected
            if volume.verification:
                entry["verification"] = dict(volume.verification)
        entries.append(entry)
    return entries
