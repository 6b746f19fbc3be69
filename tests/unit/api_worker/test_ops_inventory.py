"""Inventory operations over a scripted backend (the simulator covers the usual paths in tests/integration/modes):
a broken node among many, a standalone node."""

from __future__ import annotations

from proxmox_mcp_api_worker import ops_inventory
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

from tests.unit.api_worker.test_operations import _budget, _ops

NODES = [{"node": "pve1", "status": "online"}, {"node": "pve2", "status": "online"},
         {"node": "pve3", "status": "offline"}]


async def test_storage_of_all_nodes_names_a_broken_node_and_an_offline_one_and_keeps_the_others() -> None:
    ops, backend = _ops({
        ("GET", "/nodes"): NODES,
        ("GET", "/nodes/pve1/storage"): [{"storage": "local", "type": "dir", "active": 1, "shared": 0, "total": "10"}],
        ("GET", "/nodes/pve2/storage"): ServiceFailure(ErrorCode.UNAVAILABLE, "node pve2 unreachable"),
    })
    result = await ops_inventory.storage_list(ops, x.ListStorageArgs(), _budget())
    assert [(s.node, s.storage, s.active, s.shared, s.total) for s in result.storages] == \
        [("pve1", "local", True, False, 10)]
    assert result.unreachable_nodes == ["pve2", "pve3"]
    assert [(u.node, u.code) for u in result.unreachable] == [("pve2", "unavailable"), ("pve3", "offline")]
    assert "node pve2 unreachable" in result.unreachable[0].reason
    assert "/nodes/pve3/storage" not in [path for _, path, _, _ in backend.requests]


async def test_a_standalone_node_is_a_cluster_of_one_without_name_or_quorum() -> None:
    ops, _ = _ops({("GET", "/cluster/status"): [{"type": "node", "name": "pve1", "online": 1, "local": 1}]})
    result = await ops_inventory.cluster_status(ops, x.ClusterStatusArgs(), _budget())
    assert (result.name, result.quorate, result.node_count) == (None, None, 1)
    assert result.nodes[0].online is True
