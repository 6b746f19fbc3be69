"""Cluster-wide endpoints: /version, /cluster/*, /nodes, /storage."""

from __future__ import annotations

from typing import Any

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import subdirs
from proxmox_mcp_pve_sim.endpoints.guests import guest_summary
from proxmox_mcp_pve_sim.errors import failed
from proxmox_mcp_pve_sim.model import PVE_RELEASE, PVE_REPOID, PVE_VERSION, Node, Storage
from proxmox_mcp_pve_sim.sim import Sim


def version(call: Call) -> dict[str, Any]:
    return {"version": PVE_VERSION, "release": PVE_RELEASE, "repoid": PVE_REPOID, "console": "xtermjs"}


def cluster_index(call: Call) -> list[dict[str, str]]:
    return [
        {"name": name}
        for name in (
            "log",
            "options",
            "resources",
            "replication",
            "tasks",
            "backup",
            "ha",
            "status",
            "nextid",
            "firewall",
            "config",
            "acme",
            "ceph",
            "jobs",
            "mapping",
            "metrics",
            "notifications",
            "sdn",
            "bulk-action",
        )
    ]


def node_usage(sim: Sim, node: Node) -> dict[str, Any]:
    root = node.storages["local"]
    return {
        "cpu": sim.cluster.node_cpu(node.name),
        "maxcpu": node.maxcpu,
        "mem": sim.cluster.node_mem_used(node.name),
        "maxmem": node.maxmem,
        "disk": root.used,
        "maxdisk": root.total,
        "uptime": node.uptime,
    }


def nodes(call: Call) -> list[dict[str, Any]]:
    sim = call.sim
    return [
        {
            "node": node.name,
            "id": f"node/{node.name}",
            "type": "node",
            "status": "online" if node.online else "offline",
            "level": "",
            "ssl_fingerprint": sim.fingerprint,
            **(node_usage(sim, node) if node.online else {}),
        }
        for node in sim.cluster.nodes.values()
    ]


def cluster_status(call: Call) -> list[dict[str, Any]]:
    sim = call.sim
    entries: list[dict[str, Any]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": sim.cluster.name,
            "nodes": len(sim.cluster.nodes),
            "quorate": 1 if sum(n.online for n in sim.cluster.nodes.values()) * 2 > len(sim.cluster.nodes) else 0,
            "version": len(sim.cluster.nodes) + 2,
        }
    ]
    local = sim.api_node
    entries.extend(
        {
            "type": "node",
            "id": f"node/{node.name}",
            "name": node.name,
            "ip": node.ip,
            "nodeid": node.nodeid,
            "online": 1 if node.online else 0,
            "local": 1 if node.name == local else 0,
            "level": "",
        }
        for node in sim.cluster.nodes.values()
    )
    return entries


def storage_resource(node: Node, storage: Storage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"storage/{node.name}/{storage.storage}",
        "type": "storage",
        "storage": storage.storage,
        "node": node.name,
        "status": "available" if node.online else "unknown",
        "content": storage.content,
        "plugintype": storage.type,
        "shared": storage.shared,
    }
    if node.online:
        entry.update({"disk": storage.used, "maxdisk": storage.total})
    return entry


OFFLINE_GUEST_KEYS = ("vmid", "name", "maxmem", "maxdisk")
"""What /cluster/resources still knows of a guest whose node is offline: its config, not what it does."""


def cluster_resources(call: Call) -> list[dict[str, Any]]:
    sim, wanted = call.sim, call.get("type")
    access = sim.access
    entries: list[dict[str, Any]] = []
    if wanted in (None, "vm"):
        for guest in sorted(sim.cluster.guests.values(), key=lambda g: g.vmid):
            if "VM.Audit" not in access.privileges(call.caller, f"/vms/{guest.vmid}"):
                continue
            summary = guest_summary(guest)
            if not sim.cluster.nodes[guest.node].online:
                entry = {key: summary[key] for key in OFFLINE_GUEST_KEYS}
                entry.update({"id": f"{guest.kind}/{guest.vmid}", "type": guest.kind, "node": guest.node,
                              "status": "unknown", "maxcpu": guest.cpus, "template": guest.template})
                entries.append(entry)
                continue
            entry = {
                key: summary[key]
                for key in (
                    "vmid",
                    "name",
                    "status",
                    "cpu",
                    "maxmem",
                    "mem",
                    "maxdisk",
                    "uptime",
                    "netin",
                    "netout",
                    "diskread",
                    "diskwrite",
                )
            }
            entry.update(
                {
                    "id": f"{guest.kind}/{guest.vmid}",
                    "type": guest.kind,
                    "node": guest.node,
                    "maxcpu": guest.cpus,
                    "disk": summary.get("disk", 0),
                    "template": guest.template,
                }
            )
            for optional in ("tags", "lock"):
                if optional in summary:
                    entry[optional] = summary[optional]
            entries.append(entry)
    if wanted in (None, "node"):
        entries.extend(
            {
                "id": f"node/{node.name}",
                "type": "node",
                "node": node.name,
                "status": "online" if node.online else "offline",
                "level": "",
                **({"cgroup-mode": 2, **node_usage(sim, node)} if node.online else {}),
            }
            for node in sim.cluster.nodes.values()
        )
    if wanted in (None, "storage"):
        readable = {"Datastore.Audit", "Datastore.AllocateSpace"}
        entries.extend(
            storage_resource(node, storage)
            for node in sim.cluster.nodes.values()
            for storage in node.storages.values()
            if access.privileges(call.caller, f"/storage/{storage.storage}") & readable
        )
    if wanted in (None, "sdn"):
        entries.extend(
            {
                "id": f"sdn/{node.name}/localnetwork",
                "type": "sdn",
                "sdn": "localnetwork",
                "node": node.name,
                "status": "ok" if node.online else "unknown",
            }
            for node in sim.cluster.nodes.values()
        )
    return entries


def cluster_tasks(call: Call) -> list[dict[str, Any]]:
    tasks = sorted(call.sim.tasks.tasks.values(), key=lambda t: (t.status != "running", -t.starttime))
    return [task.list_entry() for task in tasks[:1000]]


def cluster_nextid(call: Call) -> int:
    guests = call.sim.cluster.guests
    wanted = call.get("vmid")
    if wanted is not None:
        if wanted in guests:
            raise failed(f"VM {wanted} already exists")
        return wanted
    vmid = 100
    while vmid in guests:
        vmid += 1
    return vmid


def storage_config(call: Call) -> list[dict[str, Any]]:
    wanted = call.get("type")
    first = next(iter(call.sim.cluster.nodes.values()))
    entries: list[dict[str, Any]] = []
    for storage in first.storages.values():
        if wanted and storage.type != wanted:
            continue
        entry: dict[str, Any] = {
            "storage": storage.storage,
            "type": storage.type,
            "content": storage.content,
            "digest": "9b7c3a0d1c1f2e4a8b6d5c3e2f1a0b9c8d7e6f5a",
        }
        if storage.path:
            entry["path"] = storage.path
        if "backup" in storage.content.split(","):
            entry["prune-backups"] = storage.prune_backups or "keep-all=1"
        if storage.type == "lvmthin":
            entry.update({"thinpool": "data", "vgname": "pve"})
        if storage.shared and storage.type not in ("nfs", "pbs", "cifs", "cephfs", "rbd"):
            entry["shared"] = 1
        entry.update(storage.settings)
        entries.append(entry)
    return entries


def node_index(call: Call) -> list[dict[str, str]]:
    return subdirs(
        "aplinfo",
        "apt",
        "capabilities",
        "ceph",
        "certificates",
        "config",
        "disks",
        "dns",
        "firewall",
        "hardware",
        "hosts",
        "journal",
        "lxc",
        "migrateall",
        "netstat",
        "network",
        "qemu",
        "query-url-metadata",
        "replication",
        "report",
        "rrd",
        "rrddata",
        "scan",
        "sdn",
        "services",
        "spiceshell",
        "startall",
        "status",
        "stopall",
        "storage",
        "subscription",
        "suspendall",
        "syslog",
        "tasks",
        "termproxy",
        "time",
        "version",
        "vncshell",
        "vzdump",
        "wakeonlan",
    )
