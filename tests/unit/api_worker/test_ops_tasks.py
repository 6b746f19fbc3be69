"""Task operations over a scripted backend: the cluster-wide task list and paging through a task's log."""

from __future__ import annotations

from proxmox_mcp_api_worker import ops_tasks
from proxmox_mcp_api_worker.backend import Params
from proxmox_mcp_contracts import tools_extra as x

from tests.unit.api_worker.test_operations import _budget, _ops

NODES = [{"node": "pve1", "status": "online"}, {"node": "pve2", "status": "online"},
         {"node": "pve3", "status": "offline"}]


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
