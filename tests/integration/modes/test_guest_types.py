"""vm_status / vm_action with `type`: the gateway's container_status/container_action pass type="lxc" (and the VM
tools may pass "qemu"), so a guest of the other type is refused before anything happens."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.helpers import SimClient
from tests.integration.modes.helpers import ModesStack, api_call, error_of, follow, result_of


async def test_a_type_that_matches_is_accepted_and_one_that_does_not_is_invalid(
    modes_stack: ModesStack, alpha_client: SimClient, nc: NatsClient
) -> None:
    cluster = modes_stack["alpha-direct"]
    resources = alpha_client.get("/cluster/resources", type="vm")
    ct = next(g for g in resources if g["type"] == "lxc" and g["status"] == "stopped")
    vm = next(g for g in resources if g["type"] == "qemu" and not g.get("template"))
    status = result_of(await api_call(nc, cluster, ApiOp.VM_STATUS, {"vmid": ct["vmid"], "type": "lxc"}))
    assert (status["type"], status["status"]) == ("lxc", "stopped")
    wrong = error_of(await api_call(nc, cluster, ApiOp.VM_STATUS, {"vmid": vm["vmid"], "type": "lxc"}))
    assert wrong.code is ErrorCode.INVALID_ARGUMENT and "is a QEMU VM, not an LXC container" in wrong.message
    refused = error_of(await api_call(nc, cluster, ApiOp.VM_ACTION,
                                      {"vmid": ct["vmid"], "action": "start", "type": "qemu"}))
    assert refused.code is ErrorCode.INVALID_ARGUMENT and "is an LXC container, not a QEMU VM" in refused.message
    assert alpha_client.get(f"/nodes/{ct['node']}/lxc/{ct['vmid']}/status/current")["status"] == "stopped"
    bad = error_of(await api_call(nc, cluster, ApiOp.VM_STATUS, {"vmid": ct["vmid"], "type": "docker"}))
    assert bad.code is ErrorCode.INVALID_ARGUMENT and "type" in bad.message
    for action in ("start", "stop"):
        started = result_of(await api_call(nc, cluster, ApiOp.VM_ACTION,
                                           {"vmid": ct["vmid"], "action": action, "type": "lxc"}))
        assert started["type"] == "lxc"
        assert (await follow(nc, cluster, started["upid"]))["ok"] is True
