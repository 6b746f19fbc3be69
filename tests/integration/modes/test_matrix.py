"""Issue 7, done-when 1: the same matrix of calls (list, status, start followed to its end through task_status,
stop, snapshot create/list/delete, task log, a failing task and a few errors) in the three API modes — direct
HTTPS, HTTPS through an SSH tunnel to the simulator's SSH face, and pvesh in the SSH face — gives equal results,
with two simulated clusters served by the same api-worker at once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.modes.helpers import MODES, ModesStack, api_call, error_of, follow, guests, result_of
from tests.support.sim import SimInfo, reset_sim

UPID = re.compile(r"^UPID:[a-z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:\w+:\d*:[^:]+:$")
VOLATILE = {"cpu", "mem", "uptime", "disk", "netin", "netout", "diskread", "diskwrite", "pid", "starttime",
            "snaptime"}
"""Fields that change with time, not with the mode."""


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE and k != "upid"}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _error(info: ErrorInfo, cluster: str) -> dict[str, Any]:
    return {"code": info.code.value, "message": info.message.replace(cluster, "<cluster>")}


async def _started(nc: NatsClient, cluster: str, op: ApiOp, args: dict[str, Any],
                   record: dict[str, Any], key: str) -> dict[str, Any]:
    """Start a task, check its UPID, follow it to its end like the gateway's wait, record both."""
    started = result_of(await api_call(nc, cluster, op, args))
    assert UPID.match(started["upid"]), started["upid"]
    assert started["upid"].split(":")[1] == started["node"]
    task = await follow(nc, cluster, started["upid"])
    record[key] = {"started": _stable(started), "task": _stable(task)}
    return started


async def matrix(nc: NatsClient, cluster: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    listed = result_of(await api_call(nc, cluster, ApiOp.LIST_VMS))
    record["list_vms"] = _stable(listed)
    vms = guests(listed)
    stopped = next(g for g in vms if g.type == "qemu" and g.status == "stopped" and not g.template)
    running = next(g for g in vms if g.status == "running")
    running_vm = next((g for g in vms if g.type == "qemu" and g.status == "running"), None)
    record["status_before"] = _stable(result_of(await api_call(nc, cluster, ApiOp.VM_STATUS, {"vmid": stopped.vmid})))

    start = await _started(nc, cluster, ApiOp.VM_ACTION, {"vmid": stopped.vmid, "action": "start"}, record, "start")
    record["status_running"] = _stable(result_of(await api_call(nc, cluster, ApiOp.VM_STATUS,
                                                                {"vmid": stopped.vmid})))
    log = result_of(await api_call(nc, cluster, ApiOp.TASK_LOG, {"upid": start["upid"]}))
    assert log["upid"] == start["upid"] and log["lines"], log
    record["task_log"] = _stable(log)
    record["task_log_tail"] = _stable(result_of(await api_call(nc, cluster, ApiOp.TASK_LOG,
                                                               {"upid": start["upid"], "tail": 1})))
    await _started(nc, cluster, ApiOp.VM_ACTION, {"vmid": stopped.vmid, "action": "stop"}, record, "stop")
    record["status_after"] = _stable(result_of(await api_call(nc, cluster, ApiOp.VM_STATUS, {"vmid": stopped.vmid})))

    # A task that fails: over HTTPS Proxmox gives its UPID; pvesh fails, and the worker finds the same task.
    if running_vm is not None:
        await _started(nc, cluster, ApiOp.VM_ACTION, {"vmid": running_vm.vmid, "action": "start"}, record, "failing")

    snap = {"vmid": running.vmid, "name": "matrix", "description": "modes matrix"}
    await _started(nc, cluster, ApiOp.SNAPSHOT_CREATE, snap, record, "snapshot_create")
    record["snapshots"] = _stable(result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_LIST, {"vmid": running.vmid})))
    await _started(nc, cluster, ApiOp.SNAPSHOT_DELETE, {"vmid": running.vmid, "name": "matrix"}, record,
                   "snapshot_delete")
    record["snapshots_after"] = _stable(result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_LIST,
                                                                 {"vmid": running.vmid})))

    errors = {
        "unknown_vm": (ApiOp.VM_STATUS, {"vmid": 99999}),
        "bad_parameter": (ApiOp.PROXMOX_API, {"path": "/nodes/pve1/qemu/abc/status/current"}),
        "no_such_path": (ApiOp.PROXMOX_API, {"path": "/nope"}),
        "unknown_node": (ApiOp.NODE_NETWORK, {"node": "pve9"}),
        "container_running": (ApiOp.VM_ACTION, {"vmid": next(g.vmid for g in vms if g.type == "lxc"
                                                             and g.status == "running"), "action": "start"}),
    }
    for key, (op, args) in errors.items():
        record[key] = _error(error_of(await api_call(nc, cluster, op, args)), cluster)
    return record


async def _all_modes(nc: NatsClient, stack: ModesStack, sim: SimInfo, family: str) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        await asyncio.to_thread(reset_sim, sim)
        results[mode] = await matrix(nc, stack[f"{family}-{mode}"])
    return results


async def test_the_same_calls_give_the_same_results_in_every_mode_on_two_clusters_at_once(
    modes_stack: ModesStack, nc: NatsClient
) -> None:
    alpha, beta = await asyncio.gather(_all_modes(nc, modes_stack, modes_stack.alpha, "alpha"),
                                       _all_modes(nc, modes_stack, modes_stack.beta, "beta"))
    for family, results in (("alpha", alpha), ("beta", beta)):
        direct = results["direct"]
        for mode in ("tunnel", "pvesh"):
            for key in direct:
                assert results[mode][key] == direct[key], f"{family}: {key} differs between direct and {mode}"
            assert results[mode].keys() == direct.keys()
    # The two clusters really are different simulators, each seen as itself.
    assert alpha["direct"]["list_vms"] != beta["direct"]["list_vms"]
    assert {vm["node"] for vm in alpha["direct"]["list_vms"]["vms"]} <= set(modes_stack.alpha.nodes)
    assert {vm["node"] for vm in beta["direct"]["list_vms"]["vms"]} <= set(modes_stack.beta.nodes)
    # And what the matrix did happened.
    for results in (alpha, beta):
        direct = results["direct"]
        assert direct["status_before"]["status"] == "stopped" and direct["status_running"]["status"] == "running"
        assert direct["status_after"]["status"] == "stopped"
        assert direct["start"]["task"]["exitstatus"] == "OK" and direct["stop"]["task"]["ok"] is True
        assert [s["name"] for s in direct["snapshots"]["snapshots"]][-1] == "matrix"
        assert "matrix" not in [s["name"] for s in direct["snapshots_after"]["snapshots"]]
        assert direct["task_log_tail"]["lines"][-1]["t"] == "TASK OK"
        assert {direct[k]["code"] for k in ("unknown_vm", "no_such_path", "unknown_node")} == {"not_found"}
        assert direct["bad_parameter"]["code"] == "invalid_argument"
        assert direct["container_running"]["code"] == "conflict"
    failing = alpha["direct"]["failing"]["task"]
    assert failing["ok"] is False and failing["exitstatus"].endswith("already running")
