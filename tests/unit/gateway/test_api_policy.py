"""Which proxmox_api calls count as destructive (and so need confirmation)."""

from __future__ import annotations

from proxmox_mcp_gateway.api_policy import destructive_api_call


def test_calls_that_delete_stop_roll_back_or_power_off_are_destructive_and_others_are_not() -> None:
    assert destructive_api_call("DELETE", "/nodes/pve1/qemu/100/snapshot/s1")
    assert destructive_api_call("POST", "/nodes/pve1/qemu/100/status/stop")
    assert destructive_api_call("POST", "/nodes/pve1/lxc/200/snapshot/s1/rollback")
    assert destructive_api_call("POST", "/nodes/pve1/status")
    assert not destructive_api_call("POST", "/nodes/pve1/qemu/100/status/start")
    assert not destructive_api_call("PUT", "/access/password")
    assert not destructive_api_call("GET", "/nodes/pve1/qemu/100/status/stop")
