"""Snapshot operations over a scripted backend."""

from __future__ import annotations

from proxmox_mcp_api_worker import ops_snapshots
from proxmox_mcp_contracts import tools_extra as x

from tests.unit.api_worker.test_operations import _budget, _ops


async def test_snapshot_list_leaves_out_current_and_sorts_by_time() -> None:
    ops, _ = _ops({("GET", "/nodes/pve1/qemu/100/snapshot"): [
        {"name": "current", "parent": "b", "running": 1, "description": "You are here!"},
        {"name": "b", "snaptime": 20, "parent": "a", "vmstate": 1, "description": ""},
        {"name": "a", "snaptime": 10, "description": "first"},
    ]})
    result = await ops_snapshots.snapshot_list(ops, x.ListSnapshotsArgs(vmid=100), _budget())
    assert [(s.name, s.vmstate, s.description) for s in result.snapshots] == [("a", False, "first"),
                                                                              ("b", True, None)]
    assert result.current_parent == "b"
