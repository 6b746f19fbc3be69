"""Storage, cluster, network and task operations of the api-worker against the simulator (every API mode for the
reads), each compared with the simulator's own answer, and each with its bad-argument cases."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.helpers import SimClient
from tests.integration.modes.helpers import MODES, ModesStack, api_call, error_of, follow, result_of

BOOLEAN_FIELDS = ("active", "enabled", "shared", "autostart", "online", "local", "quorate")


def _plain(entry: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The simulator's entry reduced to keys, with Proxmox's 0/1 booleans as booleans."""
    return {k: (bool(entry[k]) if k in BOOLEAN_FIELDS else entry[k]) for k in keys if k in entry}


async def _refused(nc: NatsClient, cluster: str, op: ApiOp, args: dict[str, Any], code: ErrorCode,
                   fragment: str) -> None:
    failure = error_of(await api_call(nc, cluster, op, args))
    assert failure.code is code and fragment in failure.message, (op, args, failure)


# --- storage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_storage_of_all_nodes_and_of_one_node_is_the_simulators(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    keys = ("storage", "type", "content", "shared", "active", "enabled", "total", "used", "avail")
    expected = sorted(({"node": node, **_plain(s, keys)} for node in modes_stack.alpha.nodes
                       for s in alpha_client.get(f"/nodes/{node}/storage")),
                      key=lambda s: (s["node"], s["storage"]))
    everything = result_of(await api_call(nc, cluster, ApiOp.STORAGE_LIST))
    assert everything["unreachable_nodes"] == []
    assert [{k: s[k] for k in ("node", *keys)} for s in everything["storages"]] == expected
    node = modes_stack.alpha.nodes[1]
    one = result_of(await api_call(nc, cluster, ApiOp.STORAGE_LIST, {"node": node, "content": "iso"}))
    assert [s["storage"] for s in one["storages"]] == \
        sorted(s["storage"] for s in alpha_client.get(f"/nodes/{node}/storage", content="iso"))
    assert {s["node"] for s in one["storages"]} == {node}


async def test_bad_storage_list_arguments_are_refused_naming_what_is_wrong(
    modes_stack: ModesStack, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    await _refused(nc, cluster, ApiOp.STORAGE_LIST, {"node": "pve9"}, ErrorCode.NOT_FOUND, "pve9")
    await _refused(nc, cluster, ApiOp.STORAGE_LIST, {"content": "movies"}, ErrorCode.INVALID_ARGUMENT, "content")
    await _refused(nc, cluster, ApiOp.STORAGE_LIST, {"node": "bad node!"}, ErrorCode.INVALID_ARGUMENT, "node")


@pytest.mark.parametrize("mode", MODES)
async def test_storage_content_is_the_simulators_with_and_without_filters(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    node = modes_stack.alpha.nodes[0]
    raw = alpha_client.get(f"/nodes/{node}/storage/local/content")
    result = result_of(await api_call(nc, cluster, ApiOp.STORAGE_CONTENT, {"node": node, "storage": "local"}))
    assert (result["node"], result["storage"]) == (node, "local")
    keys = ("volid", "content", "format", "size", "ctime")
    assert [{k: i[k] for k in keys} for i in result["items"]] == \
        sorted((_plain(v, keys) for v in raw), key=lambda v: v["volid"])
    isos = result_of(await api_call(nc, cluster, ApiOp.STORAGE_CONTENT,
                                    {"node": node, "storage": "local", "content": "iso"}))
    assert isos["items"] and {i["content"] for i in isos["items"]} == {"iso"}
    owned = next(v for v in raw if v.get("vmid"))
    mine = result_of(await api_call(nc, cluster, ApiOp.STORAGE_CONTENT,
                                    {"node": node, "storage": "local", "vmid": owned["vmid"]}))
    assert mine["items"] and {i["vmid"] for i in mine["items"]} == {owned["vmid"]}


async def test_bad_storage_content_arguments_are_refused_naming_what_is_wrong(
    modes_stack: ModesStack, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    node = modes_stack.alpha.nodes[0]
    await _refused(nc, cluster, ApiOp.STORAGE_CONTENT, {"node": node, "storage": "nosuch"}, ErrorCode.NOT_FOUND,
                   "nosuch")
    await _refused(nc, cluster, ApiOp.STORAGE_CONTENT, {"node": node, "storage": "../etc"},
                   ErrorCode.INVALID_ARGUMENT, "storage")
    await _refused(nc, cluster, ApiOp.STORAGE_CONTENT, {"storage": "local"}, ErrorCode.INVALID_ARGUMENT, "node")


# --- cluster and network ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_cluster_status_and_resources_are_the_simulators(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    raw = alpha_client.get("/cluster/status")
    status = result_of(await api_call(nc, cluster, ApiOp.CLUSTER_STATUS))
    summary = next(e for e in raw if e["type"] == "cluster")
    assert (status["name"], status["quorate"], status["node_count"]) == (summary["name"], True, summary["nodes"])
    assert status["nodes"] == sorted(
        (_plain(e, ("name", "nodeid", "ip", "online", "local", "level")) for e in raw if e["type"] == "node"),
        key=lambda n: n["name"])
    storage = result_of(await api_call(nc, cluster, ApiOp.CLUSTER_RESOURCES, {"type": "storage"}))
    assert [r["id"] for r in storage["resources"]] == \
        sorted(r["id"] for r in alpha_client.get("/cluster/resources", type="storage"))
    assert storage["count"] == len(storage["resources"]) and {r["type"] for r in storage["resources"]} == {"storage"}
    everything = result_of(await api_call(nc, cluster, ApiOp.CLUSTER_RESOURCES))
    assert {r["type"] for r in everything["resources"]} >= {"qemu", "lxc", "node", "storage"}


async def test_bad_cluster_arguments_are_refused_naming_what_is_wrong(modes_stack: ModesStack, nc: NatsClient) -> None:
    cluster = modes_stack["alpha-direct"]
    await _refused(nc, cluster, ApiOp.CLUSTER_RESOURCES, {"type": "disks"}, ErrorCode.INVALID_ARGUMENT, "type")
    await _refused(nc, cluster, ApiOp.CLUSTER_STATUS, {"verbose": True}, ErrorCode.INVALID_ARGUMENT, "verbose")


@pytest.mark.parametrize("mode", MODES)
async def test_node_network_is_the_nodes_interfaces(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    node = modes_stack.alpha.nodes[2]
    raw = alpha_client.get(f"/nodes/{node}/network")
    result = result_of(await api_call(nc, cluster, ApiOp.NODE_NETWORK, {"node": node}))
    keys = ("iface", "type", "active", "autostart", "method", "address", "netmask", "cidr", "gateway", "bridge_ports")
    assert [{k: i[k] for k in keys if i[k] is not None} for i in result["interfaces"]] == \
        sorted((_plain(e, keys) for e in raw), key=lambda e: e["iface"])
    bridges = result_of(await api_call(nc, cluster, ApiOp.NODE_NETWORK, {"node": node, "type": "bridge"}))
    assert bridges["interfaces"] and {i["type"] for i in bridges["interfaces"]} == {"bridge"}


async def test_bad_node_network_arguments_are_refused_naming_what_is_wrong(
    modes_stack: ModesStack, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    await _refused(nc, cluster, ApiOp.NODE_NETWORK, {"node": "pve9"}, ErrorCode.NOT_FOUND, "pve9")
    await _refused(nc, cluster, ApiOp.NODE_NETWORK, {"node": "pve1", "type": "wifi"}, ErrorCode.INVALID_ARGUMENT,
                   "type")
    await _refused(nc, cluster, ApiOp.NODE_NETWORK, {}, ErrorCode.INVALID_ARGUMENT, "node")


# --- tasks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_the_task_list_and_log_show_the_tasks_that_just_ran(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    vm = next(g for g in alpha_client.get("/cluster/resources", type="vm")
              if g["type"] == "qemu" and g["status"] == "running" and not g.get("template"))
    ok_task = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_CREATE, {"vmid": vm["vmid"], "name": f"l-{mode}"}))
    await follow(nc, cluster, ok_task["upid"])
    failed = result_of(await api_call(nc, cluster, ApiOp.VM_ACTION, {"vmid": vm["vmid"], "action": "start"}))
    await follow(nc, cluster, failed["upid"])

    recent = result_of(await api_call(nc, cluster, ApiOp.TASK_LIST, {"limit": 2}))
    assert recent["count"] == 2 and [t["upid"] for t in recent["tasks"]] == [failed["upid"], ok_task["upid"]]
    on_node = result_of(await api_call(nc, cluster, ApiOp.TASK_LIST, {"node": vm["node"], "vmid": vm["vmid"]}))
    assert {ok_task["upid"], failed["upid"]} <= {t["upid"] for t in on_node["tasks"]}
    assert {t["id"] for t in on_node["tasks"]} == {str(vm["vmid"])}
    for scope in ({}, {"node": vm["node"]}):
        errors = result_of(await api_call(nc, cluster, ApiOp.TASK_LIST, {"errors": True, **scope}))
        assert failed["upid"] in {t["upid"] for t in errors["tasks"]}
        assert all(t["ok"] is False and t["status"] == "stopped" for t in errors["tasks"])
    entry = next(t for t in on_node["tasks"] if t["upid"] == ok_task["upid"])
    assert (entry["status"], entry["exitstatus"], entry["ok"], entry["type"]) == \
        ("stopped", "OK", True, "qmsnapshot")

    raw_log = alpha_client.get(f"/nodes/{vm['node']}/tasks/{ok_task['upid']}/log")
    page = result_of(await api_call(nc, cluster, ApiOp.TASK_LOG, {"upid": ok_task["upid"], "limit": 1}))
    assert page["lines"] == [raw_log[0]] and page["node"] == vm["node"]
    rest = result_of(await api_call(nc, cluster, ApiOp.TASK_LOG, {"upid": ok_task["upid"], "start": 1}))
    assert rest["lines"] == raw_log[1:]
    tail = result_of(await api_call(nc, cluster, ApiOp.TASK_LOG, {"upid": ok_task["upid"], "tail": 1}))
    assert tail["lines"] == [{"n": len(raw_log), "t": "TASK OK"}]
    await follow(nc, cluster, result_of(await api_call(
        nc, cluster, ApiOp.SNAPSHOT_DELETE, {"vmid": vm["vmid"], "name": f"l-{mode}"}))["upid"])


async def test_bad_task_list_and_log_arguments_are_refused_naming_what_is_wrong(
    modes_stack: ModesStack, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    unknown = "UPID:pve1:00FFFFFF:00FFFFFF:6B000000:qmstart:100:root@pam:"
    await _refused(nc, cluster, ApiOp.TASK_LIST, {"limit": 0}, ErrorCode.INVALID_ARGUMENT, "limit")
    await _refused(nc, cluster, ApiOp.TASK_LIST, {"node": "pve9"}, ErrorCode.NOT_FOUND, "pve9")
    await _refused(nc, cluster, ApiOp.TASK_LOG, {"upid": "not-a-upid"}, ErrorCode.INVALID_ARGUMENT, "upid")
    await _refused(nc, cluster, ApiOp.TASK_LOG, {"upid": unknown}, ErrorCode.NOT_FOUND, "no such task")
    await _refused(nc, cluster, ApiOp.TASK_LOG, {"upid": unknown, "tail": 0}, ErrorCode.INVALID_ARGUMENT, "tail")
