"""Task lists (cluster-wide or per node) and task logs (a page, or the tail)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_api_worker import partial
from proxmox_mcp_api_worker.operations import Budget, ClusterOperations
from proxmox_mcp_api_worker.upid import parse_upid
from proxmox_mcp_api_worker.values import as_int, as_str, seg


def task_summary(entry: Mapping[str, Any]) -> x.TaskSummary:
    """A task list entry. Proxmox puts the exit status in `status` once a task ended; running tasks have none."""
    raw_status = as_str(entry.get("status"))
    running = raw_status in (None, "running") and entry.get("endtime") is None
    exitstatus = None if running else raw_status
    upid = str(entry["upid"])
    node = as_str(entry.get("node")) or upid.split(":")[1]
    return x.TaskSummary(
        upid=upid, node=node, type=as_str(entry.get("type")), id=as_str(entry.get("id")) or None,
        user=as_str(entry.get("user")), status="running" if running else "stopped", exitstatus=exitstatus,
        ok=None if running else exitstatus == "OK", starttime=as_int(entry.get("starttime")),
        endtime=as_int(entry.get("endtime")),
    )


def _failed(task: x.TaskSummary) -> bool:
    return task.status == "stopped" and task.exitstatus != "OK"


async def task_list(ops: ClusterOperations, args: x.ListTasksArgs, budget: Budget) -> x.TaskListResult:
    """Newest first. Per node: Proxmox filters (vmid, errors, limit; running tasks included). Cluster-wide:
    /cluster/tasks (Proxmox's recent tasks of every node, no filters of its own) filtered here."""
    if args.node is not None:
        params: dict[str, Any] = {"source": "all", "limit": args.limit}
        if args.vmid is not None:
            params["vmid"] = args.vmid
        if args.errors:
            params["errors"] = 1
        data = await ops.call(budget, "GET", f"/nodes/{seg(args.node)}/tasks", params)
        down: list[t.UnreachableNode] = []
    else:
        data = await ops.call(budget, "GET", "/cluster/tasks")
        # The cluster's task index cannot be current for a lost node (a task it lists as running may be over).
        down = partial.split_online(await ops.nodes(budget))[1]
    if not is_array(data):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's task list is not a list")
    tasks = [task_summary(e) for e in data if is_object(e) and isinstance(e.get("upid"), str)]
    if args.vmid is not None:
        tasks = [task for task in tasks if task.id == str(args.vmid)]
    if args.errors:
        tasks = [task for task in tasks if _failed(task)]
    tasks.sort(key=lambda task: (task.starttime or 0, task.upid), reverse=True)
    tasks = tasks[: args.limit]
    return x.TaskListResult(tasks=tasks, count=len(tasks), **partial.partial_fields(down))


def _line(entry: Any, fallback: int) -> x.TaskLogLine:
    if is_object(entry):
        return x.TaskLogLine(n=as_int(entry.get("n")) or fallback, t=str(entry.get("t", "")))
    return x.TaskLogLine(n=fallback, t=str(entry))


async def task_log(ops: ClusterOperations, args: x.TaskLogArgs, budget: Budget) -> x.TaskLogResult:
    upid = parse_upid(args.upid)
    path = f"/nodes/{seg(upid.node)}/tasks/{seg(args.upid)}/log"
    if args.tail is None:
        chunk = await ops.call(budget, "GET", path, {"start": args.start, "limit": args.limit})
        if not is_array(chunk):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's task log is not a list")
        lines = [_line(entry, args.start + index + 1) for index, entry in enumerate(chunk)]
        return x.TaskLogResult(upid=args.upid, node=upid.node, lines=lines)
    # The log API pages from the start: read page by page, keeping the last `tail` lines.
    page = max(ops.task_log_page, args.tail)
    tail: deque[x.TaskLogLine] = deque(maxlen=args.tail)
    start = 0
    for _ in range(ops.task_log_max_pages):
        chunk = await ops.call(budget, "GET", path, {"start": start, "limit": page})
        if not is_array(chunk):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's task log is not a list")
        tail.extend(_line(entry, start + index + 1) for index, entry in enumerate(chunk))
        if len(chunk) < page:
            break
        start += len(chunk)
    return x.TaskLogResult(upid=args.upid, node=upid.node, lines=list(tail))
