"""Snapshot operations of the api-worker (VMs and containers) against the simulator, in every API mode."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.helpers import SimClient
from tests.integration.modes.helpers import MODES, ModesStack, api_call, error_of, follow, result_of


def _guest(sim: SimClient, kind: str, status: str) -> dict[str, Any]:
    return next(g for g in sim.get("/cluster/resources", type="vm")
                if g["type"] == kind and g["status"] == status and not g.get("template"))


@pytest.mark.parametrize("mode", MODES)
async def test_snapshot_list_is_the_simulators_list_without_current(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    seeded = next(g for g in alpha_client.get("/cluster/resources", type="vm")
                  if any(s["name"] != "current" for s in alpha_client.get(
                      f"/nodes/{g['node']}/{g['type']}/{g['vmid']}/snapshot")))
    raw = alpha_client.get(f"/nodes/{seeded['node']}/{seeded['type']}/{seeded['vmid']}/snapshot")
    result = result_of(await api_call(nc, modes_stack[f"alpha-{mode}"], ApiOp.SNAPSHOT_LIST,
                                      {"vmid": seeded["vmid"]}))
    assert (result["vmid"], result["node"], result["type"]) == (seeded["vmid"], seeded["node"], seeded["type"])
    expected = [s for s in raw if s["name"] != "current"]
    assert [s["name"] for s in result["snapshots"]] == [s["name"] for s in expected]
    assert [s["description"] for s in result["snapshots"]] == [s.get("description") or None for s in expected]
    assert result["current_parent"] == next(s for s in raw if s["name"] == "current").get("parent")


@pytest.mark.parametrize("mode", MODES)
async def test_a_containers_snapshot_is_created_rolled_back_and_deleted(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    ct = _guest(alpha_client, "lxc", "stopped")
    name = f"t-{mode}"
    ref = {"vmid": ct["vmid"], "name": name}
    created = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_CREATE, {**ref, "description": "from a test"}))
    assert (created["action"], created["snapshot"], created["type"], created["waited"]) == \
        ("snapshot_create", name, "lxc", False)
    assert (await follow(nc, cluster, created["upid"]))["exitstatus"] == "OK"
    listed = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_LIST, {"vmid": ct["vmid"], "type": "lxc"}))
    mine = next(s for s in listed["snapshots"] if s["name"] == name)
    assert mine["description"] == "from a test" and listed["current_parent"] == name

    rollback = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_ROLLBACK, ref))
    assert rollback["action"] == "snapshot_rollback"
    assert (await follow(nc, cluster, rollback["upid"]))["ok"] is True

    deleted = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_DELETE, ref))
    assert (await follow(nc, cluster, deleted["upid"]))["ok"] is True
    raw = alpha_client.get(f"/nodes/{ct['node']}/lxc/{ct['vmid']}/snapshot")
    assert name not in [s["name"] for s in raw]


async def test_a_vm_snapshot_with_ram_state_and_a_rollback_that_starts_the_vm(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    vm = _guest(alpha_client, "qemu", "stopped")
    ref = {"vmid": vm["vmid"], "name": "withram", "type": "qemu"}
    created = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_CREATE, {**ref, "vmstate": True}))
    assert (await follow(nc, cluster, created["upid"]))["ok"] is True
    rollback = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_ROLLBACK, {**ref, "start": True}))
    assert (await follow(nc, cluster, rollback["upid"]))["ok"] is True
    assert alpha_client.get(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/status/current")["status"] == "running"
    stop = result_of(await api_call(nc, cluster, ApiOp.VM_ACTION, {"vmid": vm["vmid"], "action": "stop"}))
    await follow(nc, cluster, stop["upid"])
    deleted = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_DELETE, {**ref, "force": True}))
    assert (await follow(nc, cluster, deleted["upid"]))["ok"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_bad_snapshot_requests_are_refused_with_the_right_code(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient, mode: str
) -> None:
    cluster = modes_stack[f"alpha-{mode}"]
    ct = _guest(alpha_client, "lxc", "running")
    vm = _guest(alpha_client, "qemu", "running")
    existing = next(g for g in alpha_client.get("/cluster/resources", type="vm")
                    if any(s["name"] == "before-upgrade" for s in alpha_client.get(
                        f"/nodes/{g['node']}/{g['type']}/{g['vmid']}/snapshot")))
    cases: list[tuple[ApiOp, dict[str, Any], ErrorCode, str]] = [
        (ApiOp.SNAPSHOT_CREATE, {"vmid": ct["vmid"], "name": "1starts-with-a-digit"}, ErrorCode.INVALID_ARGUMENT,
         "name"),
        (ApiOp.SNAPSHOT_CREATE, {"vmid": ct["vmid"], "name": "ram", "vmstate": True}, ErrorCode.INVALID_ARGUMENT,
         "only QEMU VMs"),
        (ApiOp.SNAPSHOT_CREATE, {"vmid": ct["vmid"], "name": "current"}, ErrorCode.INVALID_ARGUMENT, "reserved"),
        (ApiOp.SNAPSHOT_CREATE, {"vmid": existing["vmid"], "name": "before-upgrade"}, ErrorCode.CONFLICT,
         "already used"),
        (ApiOp.SNAPSHOT_CREATE, {"vmid": 99999, "name": "x1"}, ErrorCode.NOT_FOUND, "not found"),
        (ApiOp.SNAPSHOT_DELETE, {"vmid": ct["vmid"], "name": "never-made"}, ErrorCode.NOT_FOUND, "no snapshot"),
        (ApiOp.SNAPSHOT_ROLLBACK, {"vmid": vm["vmid"], "name": "never-made"}, ErrorCode.NOT_FOUND, "no snapshot"),
        (ApiOp.SNAPSHOT_LIST, {"vmid": vm["vmid"], "type": "lxc"}, ErrorCode.INVALID_ARGUMENT,
         "not an LXC container"),
        (ApiOp.SNAPSHOT_LIST, {"vmid": 42}, ErrorCode.INVALID_ARGUMENT, "vmid"),
        (ApiOp.SNAPSHOT_DELETE, {"vmid": ct["vmid"], "name": "x1", "purge": True}, ErrorCode.INVALID_ARGUMENT,
         "purge"),
    ]
    for op, args, code, fragment in cases:
        failure = error_of(await api_call(nc, cluster, op, args))
        assert failure.code is code and fragment in failure.message, (op, args, failure)
