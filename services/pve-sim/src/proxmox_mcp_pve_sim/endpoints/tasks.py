"""Task lists, status and logs, and /nodes/{node}/execute (a batch of API calls, root only)."""

from __future__ import annotations

import json
from typing import Any

from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.pve_schema import split_list

from proxmox_mcp_pve_sim.api import Call, Result
from proxmox_mcp_pve_sim.endpoints.common import subdirs
from proxmox_mcp_pve_sim.errors import ApiError, param_error
from proxmox_mcp_pve_sim.tasks import UPID_RE, Task


def _task(call: Call) -> Task:
    upid = call["upid"]
    if not UPID_RE.match(upid):
        raise param_error({"upid": f"unable to parse worker upid '{upid}'"})
    task = call.sim.tasks.get(upid)
    if task is None:
        raise ApiError(400, "no such task")
    return task


def _status_word(task: Task) -> str:
    if task.exitstatus is None:
        return "running"
    if task.exitstatus == "OK":
        return "ok"
    return "warning" if task.exitstatus.startswith("WARNINGS") else "error"


def node_tasks(call: Call) -> Result:
    node = call["node"]
    source = call.get("source", "archive")
    vmid, typefilter, userfilter = call.get("vmid"), call.get("typefilter"), call.get("userfilter")
    since, until = call.get("since"), call.get("until")
    statuses = {s.lower() for s in split_list(call.get("statusfilter", ""))}
    only_errors = bool(call.get("errors"))
    audit = "Sys.Audit" in call.sim.access.privileges(call.caller, f"/nodes/{node}")
    selected: list[Task] = []
    for task in call.sim.tasks.tasks.values():
        if task.node != node:
            continue
        if source == "archive" and task.status == "running":
            continue
        if source == "active" and task.status != "running":
            continue
        if not audit and task.user.partition("!")[0] != call.caller.userid:
            continue
        if vmid is not None and task.id != str(vmid):
            continue
        if typefilter and typefilter not in task.type:
            continue
        if userfilter and userfilter not in task.user:
            continue
        if since is not None and task.starttime < since:
            continue
        if until is not None and task.starttime > until:
            continue
        if only_errors and task.exitstatus in (None, "OK"):
            continue
        if statuses and _status_word(task) not in statuses:
            continue
        selected.append(task)
    selected.sort(key=lambda t: (t.starttime, t.pid), reverse=True)
    start, limit = call.get("start", 0), call.get("limit", 50)
    page = selected[start : start + limit] if limit else selected[start:]
    return Result(data=[task.list_entry() for task in page], total=len(selected))


def task_index(call: Call) -> list[dict[str, str]]:
    _task(call)
    return subdirs("log", "status")


def task_status(call: Call) -> dict[str, Any]:
    return _task(call).status_entry()


def task_log(call: Call) -> Result:
    task = _task(call)
    start, limit = call.get("start", 0), call.get("limit", 50)
    lines = task.log[start : start + limit] if limit else task.log[start:]
    return Result(data=[{"n": start + index + 1, "t": text} for index, text in enumerate(lines)], total=len(task.log))


def task_stop(call: Call) -> None:
    task = _task(call)
    if task.status == "running":
        task.write("received interrupt")


async def execute(call: Call) -> list[dict[str, Any]]:
    try:
        commands = json.loads(call["commands"])
    except ValueError:
        raise param_error({"commands": "invalid format - unable to parse command batch (JSON)\n"}) from None
    if not is_array(commands):
        raise param_error({"commands": "invalid format - expected a JSON array of commands\n"})
    results: list[dict[str, Any]] = []
    for command in commands:
        if not is_object(command) or not isinstance(command.get("path"), str):
            results.append(
                {
                    "status": 400,
                    "message": "Parameter verification failed.\n",
                    "errors": {"path": "property is missing and it is not optional"},
                }
            )
            continue
        method = str(command.get("method", "GET")).upper()
        raw_args = command.get("args")
        args: dict[str, Any] = raw_args if is_object(raw_args) else {}
        answer = await call.dispatch(call.sim, call.caller, method, command["path"], dict(args))
        entry: dict[str, Any] = {"status": answer.status}
        if answer.status == 200:
            entry["data"] = answer.data
        else:
            entry["message"] = (answer.message or "") + "\n"
            if answer.errors:
                entry["errors"] = answer.errors
        results.append(entry)
    return results
