"""Edge cases of the operations beyond the six, over a scripted backend (the simulator covers the usual paths in
tests/integration/modes): a broken node among many, odd answers, output caps, a standalone node."""

from __future__ import annotations

from proxmox_mcp_api_worker import ops_inventory, ops_snapshots, ops_tasks
from proxmox_mcp_api_worker.backend import Params
from proxmox_mcp_api_worker.guest_exec import cap_output
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

from tests.unit.api.test_operations import _budget, _ops

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


async def test_cluster_status_of_a_standalone_node() -> None:
    ops, _ = _ops({("GET", "/cluster/status"): [{"type": "node", "name": "pve1", "online": 1, "local": 1}]})
    result = await ops_inventory.cluster_status(ops, x.ClusterStatusArgs(), _budget())
    assert (result.name, result.quorate, result.node_count) == (None, None, 1)
    assert result.nodes[0].online is True


async def test_cluster_wide_task_list_is_filtered_and_limited_here() -> None:
    tasks = [
        {"upid": "UPID:pve1:00000001:00000001:65000001:qmstart:100:root@pam:", "node": "pve1", "id": "100",
         "starttime": 1, "status": "OK", "endtime": 2},
        {"upid": "UPID:pve2:00000002:00000002:65000002:qmstart:100:root@pam:", "node": "pve2", "id": "100",
         "starttime": 3, "status": "VM 100 already running", "endtime": 3},
        {"upid": "UPID:pve1:00000003:00000003:65000003:vzstart:200:root@pam:", "node": "pve1", "id": "200",
         "starttime": 4},
        {"node": "pve1", "starttime": 5},
    ]
    ops, _ = _ops({("GET", "/cluster/tasks"): tasks, ("GET", "/nodes"): NODES})
    every = await ops_tasks.task_list(ops, x.ListTasksArgs(), _budget())
    assert every.unreachable_nodes == ["pve3"]  # offline: its entries in the index may be stale
    assert [t.starttime for t in every.tasks] == [4, 3, 1]
    assert (every.tasks[0].status, every.tasks[0].ok, every.tasks[0].exitstatus) == ("running", None, None)
    failed = await ops_tasks.task_list(ops, x.ListTasksArgs(vmid=100, errors=True), _budget())
    assert [(t.node, t.ok, t.exitstatus) for t in failed.tasks] == [("pve2", False, "VM 100 already running")]
    assert (await ops_tasks.task_list(ops, x.ListTasksArgs(limit=1), _budget())).count == 1


async def test_task_log_tail_pages_through_a_long_log() -> None:
    upid = "UPID:pve1:00000001:00000001:65000001:vzdump::root@pam:"
    lines = [{"n": i + 1, "t": f"line {i + 1}"} for i in range(25)]
    def page(params: Params | None) -> list[dict[str, object]]:
        assert params is not None
        return lines[params["start"]: params["start"] + params["limit"]]

    ops, backend = _ops({("GET", f"/nodes/pve1/tasks/{upid}/log"): page}, task_log_page=10)
    result = await ops_tasks.task_log(ops, x.TaskLogArgs(upid=upid, tail=3), _budget())
    assert [line.t for line in result.lines] == ["line 23", "line 24", "line 25"] and result.lines[0].n == 23
    assert len(backend.requests) == 3


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


def test_output_is_capped_like_the_ssh_worker_stdout_first() -> None:
    assert cap_output("abc", "def", 10) == ("abc", "def", False)
    assert cap_output("abcdef", "ghij", 8) == ("abcdef", "gh", True)
    assert cap_output("é" * 4, "", 3) == ("é", "", True)  # never half a character
