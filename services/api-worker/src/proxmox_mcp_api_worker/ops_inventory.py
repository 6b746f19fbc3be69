"""Read-only views of the cluster: storage (list and content), cluster status and resources, node network."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_api_worker import partial
from proxmox_mcp_api_worker.operations import Budget, ClusterOperations
from proxmox_mcp_api_worker.values import as_bool, as_float, as_int, as_str, seg

log = logging.getLogger(__name__)


def _objects(data: Any, what: str) -> list[Mapping[str, Any]]:
    if not is_array(data):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox's {what} is not a list")
    return [entry for entry in data if is_object(entry)]


# --- storage ---------------------------------------------------------------------------------


def storage_info(node: str, entry: Mapping[str, Any]) -> x.StorageInfo:
    return x.StorageInfo(
        storage=str(entry["storage"]), node=node, type=as_str(entry.get("type")), content=as_str(entry.get("content")),
        shared=as_bool(entry.get("shared")), enabled=as_bool(entry.get("enabled")), active=as_bool(entry.get("active")),
        total=as_int(entry.get("total")), used=as_int(entry.get("used")), avail=as_int(entry.get("avail")),
        used_fraction=as_float(entry.get("used_fraction")),
    )


async def _node_storage(ops: ClusterOperations, node: str, content: str | None,
                        budget: Budget) -> list[x.StorageInfo]:
    params = {"content": content} if content else None
    entries = _objects(await ops.call(budget, "GET", f"/nodes/{seg(node)}/storage", params), "storage list")
    return [storage_info(node, e) for e in entries if e.get("storage")]


async def storage_list(ops: ClusterOperations, args: x.ListStorageArgs, budget: Budget) -> x.StorageListResult:
    """One node's storage, or every online node's: a node that is offline or fails is named in `unreachable`,
    the others still count (one broken node must not hide the rest)."""
    if args.node is not None:
        storages = await _node_storage(ops, args.node, args.content, budget)
        return x.StorageListResult(storages=sorted(storages, key=lambda s: s.storage))
    online, down = partial.split_online(await ops.nodes(budget))
    answers, failed = await ops.per_node(online, lambda node: _node_storage(ops, node, args.content, budget))
    partial.require_some(len(answers), down + failed, ops.cluster)
    storages = [storage for listed in answers.values() for storage in listed]
    storages.sort(key=lambda s: (s.node or "", s.storage))
    return x.StorageListResult(storages=storages, **partial.partial_fields(down + failed))


async def storage_content(ops: ClusterOperations, args: x.StorageContentArgs,
                          budget: Budget) -> x.StorageContentResult:
    params: dict[str, Any] = {}
    if args.content:
        params["content"] = args.content
    if args.vmid is not None:
        params["vmid"] = args.vmid
    path = f"/nodes/{seg(args.node)}/storage/{seg(args.storage)}/content"
    entries = _objects(await ops.call(budget, "GET", path, params or None), "storage content")
    items = [
        x.StorageItem(volid=str(e["volid"]), content=as_str(e.get("content")), format=as_str(e.get("format")),
                      size=as_int(e.get("size")), used=as_int(e.get("used")), vmid=as_int(e.get("vmid")),
                      ctime=as_int(e.get("ctime")), notes=as_str(e.get("notes")),
                      protected=as_bool(e.get("protected")), subtype=as_str(e.get("subtype")))
        for e in entries if e.get("volid")
    ]
    items.sort(key=lambda item: item.volid)
    return x.StorageContentResult(node=args.node, storage=args.storage, items=items)


# --- cluster ---------------------------------------------------------------------------------


async def cluster_status(ops: ClusterOperations, _args: x.ClusterStatusArgs, budget: Budget) -> x.ClusterStatusResult:
    entries = _objects(await ops.call(budget, "GET", "/cluster/status"), "cluster status")
    cluster = next((e for e in entries if e.get("type") == "cluster"), None)
    nodes = sorted(
        (x.ClusterNode(name=str(e["name"]), nodeid=as_int(e.get("nodeid")), ip=as_str(e.get("ip")),
                       online=as_bool(e.get("online")), local=as_bool(e.get("local")),
                       level=as_str(e.get("level")))
         for e in entries if e.get("type") == "node" and e.get("name")),
        key=lambda n: n.name,
    )
    return x.ClusterStatusResult(
        name=as_str(cluster.get("name")) if cluster else None,
        quorate=as_bool(cluster.get("quorate")) if cluster else None,
        version=as_int(cluster.get("version")) if cluster else None,
        node_count=(as_int(cluster.get("nodes")) or len(nodes)) if cluster else len(nodes),
        nodes=nodes,
    )


async def cluster_resources(ops: ClusterOperations, args: x.ClusterResourcesArgs,
                            budget: Budget) -> x.ClusterResourcesResult:
    params = {"type": args.type} if args.type else None
    entries = _objects(await ops.call(budget, "GET", "/cluster/resources", params), "resource list")
    resources = sorted((dict(e) for e in entries), key=lambda e: (str(e.get("type", "")), str(e.get("id", ""))))
    # Node entries say which nodes are lost; a filtered listing without them is asked for those separately.
    states = entries if args.type in (None, "node") else await ops.nodes(budget)
    down = partial.down_nodes_in(states) if args.type in (None, "node") else partial.split_online(states)[1]
    return x.ClusterResourcesResult(resources=resources, count=len(resources), **partial.partial_fields(down))


# --- network ---------------------------------------------------------------------------------


def network_interface(entry: Mapping[str, Any]) -> x.NetworkInterface:
    families = entry.get("families")
    return x.NetworkInterface(
        iface=str(entry["iface"]), type=as_str(entry.get("type")), active=as_bool(entry.get("active")),
        autostart=as_bool(entry.get("autostart")), method=as_str(entry.get("method")),
        method6=as_str(entry.get("method6")),
        families=[str(f) for f in families] if is_array(families) else None,
        address=as_str(entry.get("address")), netmask=as_str(entry.get("netmask")), cidr=as_str(entry.get("cidr")),
        gateway=as_str(entry.get("gateway")), address6=as_str(entry.get("address6")),
        netmask6=as_str(entry.get("netmask6")), cidr6=as_str(entry.get("cidr6")),
        gateway6=as_str(entry.get("gateway6")), bridge_ports=as_str(entry.get("bridge_ports")),
        bridge_vlan_aware=as_bool(entry.get("bridge_vlan_aware")), slaves=as_str(entry.get("slaves")),
        bond_mode=as_str(entry.get("bond_mode")), comments=as_str(entry.get("comments")),
    )


async def node_network(ops: ClusterOperations, args: x.NodeNetworkArgs, budget: Budget) -> x.NodeNetworkResult:
    params = {"type": args.type} if args.type else None
    entries = _objects(await ops.call(budget, "GET", f"/nodes/{seg(args.node)}/network", params), "network list")
    interfaces = sorted((network_interface(e) for e in entries if e.get("iface")), key=lambda i: i.iface)
    return x.NodeNetworkResult(node=args.node, interfaces=interfaces)
