"""Every api-worker operation over real NATS against the real simulator over HTTPS, compared with the
simulator's own answers."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.conftest import ApiStack
from tests.integration.api.helpers import SimClient, error, ok, wait_for_task


def _guests(sim: SimClient) -> list[dict[str, Any]]:
    return [g for g in sim.get("/cluster/resources", type="vm") if g["type"] in ("qemu", "lxc")]


def _pick(sim: SimClient, kind: str, status: str) -> dict[str, Any]:
    found = [g for g in _guests(sim) if g["type"] == kind and g["status"] == status and not g.get("template")]
    assert found, f"the simulator has no {status} {kind} guest to test with"
    return found[0]


async def test_list_vms_is_every_guest_of_the_cluster_sorted_with_booleans(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    result = t.ListVmsResult.model_validate(await ok(nc, api_stack["pinned"], ApiOp.LIST_VMS))
    expected = sorted(_guests(sim_client), key=lambda g: g["vmid"])
    assert [vm.vmid for vm in result.vms] == [g["vmid"] for g in expected]
    assert result.count == len(expected)
    assert {vm.type for vm in result.vms} == {"qemu", "lxc"}
    for vm, raw in zip(result.vms, expected, strict=True):
        assert (vm.node, vm.type, vm.status, vm.name) == (raw["node"], raw["type"], raw["status"], raw.get("name"))
        assert vm.template is bool(raw.get("template", 0)) and vm.maxmem == raw.get("maxmem")


async def test_list_vms_filters_by_node_type_and_status(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guests = _guests(sim_client)
    node = guests[0]["node"]
    result = await ok(nc, api_stack["pinned"], ApiOp.LIST_VMS, {"node": node, "type": "lxc", "status": "running"})
    expected = sorted(g["vmid"] for g in guests
                      if g["node"] == node and g["type"] == "lxc" and g["status"] == "running")
    assert [vm["vmid"] for vm in result["vms"]] == expected


async def test_vm_status_equals_the_simulators_status_for_vms_and_containers(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    for kind in ("qemu", "lxc"):
        guest = next(g for g in _guests(sim_client) if g["type"] == kind)
        result = t.VmStatusResult.model_validate(
            await ok(nc, api_stack["pinned"], ApiOp.VM_STATUS, {"vmid": guest["vmid"]}))
        raw = sim_client.get(f"/nodes/{guest['node']}/{kind}/{guest['vmid']}/status/current")
        assert (result.vmid, result.node, result.type) == (guest["vmid"], guest["node"], kind)
        assert (result.status, result.name, result.maxmem, result.cpus) == \
            (raw["status"], raw.get("name"), raw.get("maxmem"), raw.get("cpus"))


async def test_vm_status_with_its_node_given_works_and_with_a_wrong_node_is_not_found(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = _guests(sim_client)[0]
    other = next(n for n in api_stack.sim.nodes if n != guest["node"])
    good = await ok(nc, api_stack["pinned"], ApiOp.VM_STATUS, {"vmid": guest["vmid"], "node": guest["node"]})
    bad = await error(nc, api_stack["pinned"], ApiOp.VM_STATUS, {"vmid": guest["vmid"], "node": other})
    assert good["vmid"] == guest["vmid"]
    assert bad.code is ErrorCode.NOT_FOUND and f"it is on node {guest['node']}" in bad.message


async def test_unknown_vmid_is_not_found(api_stack: ApiStack, nc: NatsClient) -> None:
    for op, args in ((ApiOp.VM_STATUS, {"vmid": 99999}), (ApiOp.VM_ACTION, {"vmid": 99999, "action": "start"})):
        failure = await error(nc, api_stack["pinned"], op, args)
        assert failure.code is ErrorCode.NOT_FOUND
        assert failure.message.startswith(f"VM 99999 not found in cluster {api_stack['pinned']}")


async def test_start_returns_a_upid_whose_task_ends_ok_and_the_vm_runs(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = _pick(sim_client, "qemu", "stopped")
    cluster = api_stack["pinned"]
    started = t.VmActionResult.model_validate(
        await ok(nc, cluster, ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "start"}))
    assert started.upid.startswith(f"UPID:{guest['node']}:") and started.waited is False
    assert (started.node, started.type, started.action) == (guest["node"], "qemu", "start")
    task = await wait_for_task(nc, cluster, started.upid)
    assert (task.exitstatus, task.ok, task.node) == ("OK", True, guest["node"])
    assert task.log_tail and task.log_tail == [line["t"] for line in sim_client.get(
        f"/nodes/{guest['node']}/tasks/{started.upid}/log")][-20:]
    status = await ok(nc, cluster, ApiOp.VM_STATUS, {"vmid": guest["vmid"]})
    assert status["status"] == "running"
    stopped = await ok(nc, cluster, ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "stop"})
    assert (await wait_for_task(nc, cluster, stopped["upid"])).ok


async def test_starting_a_running_vm_gives_a_task_that_fails_with_proxmoxs_reason(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = _pick(sim_client, "qemu", "running")
    cluster = api_stack["pinned"]
    started = await ok(nc, cluster, ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "start"})
    task = await wait_for_task(nc, cluster, started["upid"])
    assert task.ok is False and task.exitstatus == f"VM {guest['vmid']} already running"


async def test_starting_a_running_container_is_a_conflict(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = _pick(sim_client, "lxc", "running")
    failure = await error(nc, api_stack["pinned"], ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "start"})
    assert failure.code is ErrorCode.CONFLICT and failure.message == f"CT {guest['vmid']} already running"


async def test_restart_of_a_container_is_proxmoxs_reboot(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = _pick(sim_client, "lxc", "running")
    cluster = api_stack["pinned"]
    started = await ok(nc, cluster, ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "restart"})
    task = await wait_for_task(nc, cluster, started["upid"])
    assert task.type == "vzreboot" and task.ok
    assert sim_client.get(f"/nodes/{guest['node']}/lxc/{guest['vmid']}/status/current")["status"] == "running"


async def test_task_status_of_an_unknown_task_is_not_found(api_stack: ApiStack, nc: NatsClient) -> None:
    node = api_stack.sim.nodes[0]
    upid = f"UPID:{node}:0000FFFF:0000FFFF:6560A1B2:qmstart:100:root@pam:"
    failure = await error(nc, api_stack["pinned"], ApiOp.TASK_STATUS, {"upid": upid})
    assert failure.code is ErrorCode.NOT_FOUND


async def test_node_status_of_all_nodes_matches_the_node_list_and_each_nodes_status(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    result = t.NodeStatusResult.model_validate(await ok(nc, api_stack["pinned"], ApiOp.NODE_STATUS))
    listed = {n["node"]: n for n in sim_client.get("/nodes")}
    assert [n.node for n in result.nodes] == sorted(listed)
    for node in result.nodes:
        assert node.status == listed[node.node]["status"]
        if node.status == "online":
            detail = sim_client.get(f"/nodes/{node.node}/status")
            assert (node.maxmem, node.maxdisk, node.pveversion) == \
                (detail["memory"]["total"], detail["rootfs"]["total"], detail.get("pveversion"))


async def test_node_status_of_one_node_is_its_own_and_an_unknown_node_is_not_found(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    node = api_stack.sim.nodes[-1]
    one = t.NodeStatusResult.model_validate(await ok(nc, api_stack["pinned"], ApiOp.NODE_STATUS, {"node": node}))
    assert [n.node for n in one.nodes] == [node]
    assert one.nodes[0].kversion == sim_client.get(f"/nodes/{node}/status").get("kversion")
    failure = await error(nc, api_stack["pinned"], ApiOp.NODE_STATUS, {"node": "nosuchnode"})
    assert failure.code is ErrorCode.NOT_FOUND and "nosuchnode" in failure.message


async def test_proxmox_api_get_returns_the_simulators_data(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    result = await ok(nc, api_stack["pinned"], ApiOp.PROXMOX_API, {"method": "GET", "path": "/nodes/"})
    assert result["path"] == "/nodes" and result["method"] == "GET"
    assert sorted(n["node"] for n in result["data"]) == sorted(n["node"] for n in sim_client.get("/nodes"))
    version = await ok(nc, api_stack["pinned"], ApiOp.PROXMOX_API, {"path": "/version"})
    assert version["data"] == sim_client.get("/version")


async def test_proxmox_api_bad_parameter_is_invalid_argument_naming_it(api_stack: ApiStack, nc: NatsClient) -> None:
    failure = await error(nc, api_stack["pinned"], ApiOp.PROXMOX_API,
                          {"method": "GET", "path": "/cluster/resources", "data": {"type": "bogus"}})
    assert failure.code is ErrorCode.INVALID_ARGUMENT
    assert "type:" in failure.message and "type" in failure.details["errors"]


async def test_proxmox_api_unknown_path_is_not_found(api_stack: ApiStack, nc: NatsClient) -> None:
    failure = await error(nc, api_stack["pinned"], ApiOp.PROXMOX_API, {"method": "GET", "path": "/no/such/thing"})
    assert failure.code is ErrorCode.NOT_FOUND and "no such API path" in failure.message


async def test_proxmox_api_post_sends_booleans_as_proxmox_expects(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = _pick(sim_client, "qemu", "stopped")
    path = f"/nodes/{guest['node']}/qemu/{guest['vmid']}/config"
    before = sim_client.get(path).get("onboot")
    try:
        await ok(nc, api_stack["pinned"], ApiOp.PROXMOX_API, {"method": "PUT", "path": path,
                                                              "data": {"onboot": True}})
        assert str(sim_client.get(path)["onboot"]) == "1"
    finally:
        await ok(nc, api_stack["pinned"], ApiOp.PROXMOX_API, {"method": "PUT", "path": path,
                                                              "data": {"onboot": bool(before and int(before))}})


async def test_proxmox_api_path_escaping_the_api_root_is_refused(api_stack: ApiStack, nc: NatsClient) -> None:
    for path in ("/nodes/../access/users", "/nodes/%2e%2e/version", "/api2/json/nodes"):
        failure = await error(nc, api_stack["pinned"], ApiOp.PROXMOX_API, {"method": "GET", "path": path})
        assert failure.code is ErrorCode.INVALID_ARGUMENT, path


async def test_probe_reports_the_version_and_latency(api_stack: ApiStack, sim_client: SimClient,
                                                     nc: NatsClient) -> None:
    result = t.ProbeResult.model_validate(await ok(nc, api_stack["pinned"], ApiOp.PROBE))
    assert result.ok and result.latency_ms > 0 and not result.insecure_tls
    assert sim_client.get("/version")["version"] in result.detail


async def test_bad_arguments_are_refused_by_the_worker_too(api_stack: ApiStack, nc: NatsClient) -> None:
    failure = await error(nc, api_stack["pinned"], ApiOp.VM_ACTION, {"vmid": 100, "action": "explode"})
    assert failure.code is ErrorCode.INVALID_ARGUMENT and "action" in failure.message
