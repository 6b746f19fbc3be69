"""Every (method, path template) the simulator answers, and the endpoint that answers it: one table.

Built when this module is imported; each entry must be in the schema subset, and no route twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from types import MappingProxyType

from proxmox_mcp_contracts.pve_schema import method_schema

from proxmox_mcp_pve_sim.api import Handler
from proxmox_mcp_pve_sim.endpoints import access, agent, backups, cluster, guests, nodes, power, snapshots, tasks
from proxmox_mcp_pve_sim.model import GuestKind

Route = tuple[str, str, Handler]
GUEST_KINDS: tuple[GuestKind, ...] = ("qemu", "lxc")


def _power_actions() -> list[Route]:
    return [
        (
            "POST",
            f"/nodes/{{node}}/{kind}/{{vmid}}/status/{action}",
            partial(power.run_action, kind=kind, action=action),
        )
        for kind, action in power.ACTIONS
    ]


def _snapshots(kind: GuestKind) -> list[Route]:
    base = f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot"
    return [
        ("GET", base, partial(snapshots.list_snapshots, kind=kind)),
        ("POST", base, partial(snapshots.create_snapshot, kind=kind)),
        ("GET", f"{base}/{{snapname}}", partial(snapshots.snapshot_index, kind=kind)),
        ("DELETE", f"{base}/{{snapname}}", partial(snapshots.delete_snapshot, kind=kind)),
        ("POST", f"{base}/{{snapname}}/rollback", partial(snapshots.rollback_snapshot, kind=kind)),
        ("GET", f"{base}/{{snapname}}/config", partial(snapshots.snapshot_config, kind=kind)),
    ]


ENDPOINTS: tuple[Route, ...] = (
    # /access
    ("GET", "/access", access.access_index),
    ("GET", "/access/ticket", access.ticket_form),
    ("POST", "/access/ticket", access.create_ticket),
    ("GET", "/access/users", access.users),
    ("GET", "/access/users/{userid}", access.user),
    ("GET", "/access/users/{userid}/token", access.user_tokens),
    ("GET", "/access/acl", access.acl),
    ("GET", "/access/roles", access.roles),
    ("GET", "/access/domains", access.domains),
    ("GET", "/access/permissions", access.permissions),
    # cluster-wide
    ("GET", "/version", cluster.version),
    ("GET", "/cluster", cluster.cluster_index),
    ("GET", "/cluster/status", cluster.cluster_status),
    ("GET", "/cluster/resources", cluster.cluster_resources),
    ("GET", "/cluster/tasks", cluster.cluster_tasks),
    ("GET", "/cluster/nextid", cluster.cluster_nextid),
    ("GET", "/cluster/backup", backups.backup_jobs),
    ("GET", "/cluster/backup/{id}", backups.backup_job),
    ("GET", "/cluster/backup-info", backups.backup_info_index),
    ("GET", "/cluster/backup-info/not-backed-up", backups.not_backed_up),
    ("GET", "/storage", cluster.storage_config),
    ("GET", "/nodes", cluster.nodes),
    ("GET", "/nodes/{node}", cluster.node_index),
    # one node
    ("GET", "/nodes/{node}/status", nodes.node_status),
    ("GET", "/nodes/{node}/version", nodes.node_version),
    ("GET", "/nodes/{node}/time", nodes.node_time),
    ("GET", "/nodes/{node}/dns", nodes.node_dns),
    ("GET", "/nodes/{node}/network", nodes.node_network),
    ("GET", "/nodes/{node}/network/{iface}", nodes.node_network_iface),
    ("GET", "/nodes/{node}/storage", nodes.node_storage),
    ("GET", "/nodes/{node}/storage/{storage}", nodes.node_storage_index),
    ("GET", "/nodes/{node}/storage/{storage}/status", nodes.node_storage_status),
    ("GET", "/nodes/{node}/storage/{storage}/content", nodes.node_storage_content),
    ("POST", "/nodes/{node}/vzdump", backups.vzdump),
    # tasks and batches
    ("GET", "/nodes/{node}/tasks", tasks.node_tasks),
    ("GET", "/nodes/{node}/tasks/{upid}", tasks.task_index),
    ("GET", "/nodes/{node}/tasks/{upid}/status", tasks.task_status),
    ("GET", "/nodes/{node}/tasks/{upid}/log", tasks.task_log),
    ("DELETE", "/nodes/{node}/tasks/{upid}", tasks.task_stop),
    ("POST", "/nodes/{node}/execute", tasks.execute),
    # guests
    ("GET", "/nodes/{node}/qemu", guests.qemu_list),
    ("GET", "/nodes/{node}/lxc", guests.lxc_list),
    ("POST", "/nodes/{node}/qemu", guests.qemu_create),
    ("POST", "/nodes/{node}/lxc", guests.lxc_create),
    ("GET", "/nodes/{node}/qemu/{vmid}", guests.qemu_index),
    ("GET", "/nodes/{node}/lxc/{vmid}", guests.lxc_index),
    ("DELETE", "/nodes/{node}/qemu/{vmid}", guests.qemu_destroy),
    ("DELETE", "/nodes/{node}/lxc/{vmid}", guests.lxc_destroy),
    ("GET", "/nodes/{node}/qemu/{vmid}/status", guests.qemu_status_index),
    ("GET", "/nodes/{node}/lxc/{vmid}/status", guests.lxc_status_index),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current", guests.qemu_status),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current", guests.lxc_status),
    *_power_actions(),
    ("GET", "/nodes/{node}/qemu/{vmid}/config", guests.qemu_config),
    ("GET", "/nodes/{node}/lxc/{vmid}/config", guests.lxc_config),
    ("POST", "/nodes/{node}/qemu/{vmid}/config", guests.qemu_config_async),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config", guests.qemu_config_sync),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config", guests.lxc_config_set),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending", guests.qemu_pending),
    ("GET", "/nodes/{node}/lxc/{vmid}/pending", guests.lxc_pending),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces", guests.lxc_interfaces),
    *(route for kind in GUEST_KINDS for route in _snapshots(kind)),
    # the QEMU guest agent
    ("GET", "/nodes/{node}/qemu/{vmid}/agent", agent.agent_index),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec", agent.agent_exec),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status", agent.agent_exec_status),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping", agent.agent_ping),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name", agent.agent_host_name),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo", agent.agent_osinfo),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/info", agent.agent_info),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", agent.agent_interfaces),
)


def route_table(routes: Iterable[Route]) -> Mapping[tuple[str, str], Handler]:
    """{(method, template): handler}; refuses a route outside the schema subset or given twice."""
    table: dict[tuple[str, str], Handler] = {}
    for method, template, handler in routes:
        if (method, template) in table:
            raise ValueError(f"route given twice: {method} {template}")
        if method_schema(method, template) is None:
            raise ValueError(f"route not in the schema subset: {method} {template}")
        table[(method, template)] = handler
    return MappingProxyType(table)


ROUTES = route_table(ENDPOINTS)


def served_routes() -> list[tuple[str, str]]:
    """Every (method, path template) the simulator answers."""
    return sorted(ROUTES, key=lambda key: (key[1], key[0]))
