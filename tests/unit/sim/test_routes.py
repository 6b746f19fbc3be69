"""The simulator's route table: one explicit list, checked against the schema subset when it is built."""

from __future__ import annotations

from typing import Any

import pytest
from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.routes import route_table, served_routes


def _handler(call: Call) -> Any:
    return None


def test_a_route_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="route given twice: GET /version"):
        route_table([("GET", "/version", _handler), ("GET", "/version", _handler)])


def test_a_route_outside_the_schema_subset_is_refused() -> None:
    with pytest.raises(ValueError, match="route not in the schema subset: POST /version"):
        route_table([("POST", "/version", _handler)])


def test_every_power_action_and_snapshot_operation_is_served_for_both_guest_kinds() -> None:
    served = set(served_routes())
    for kind in ("qemu", "lxc"):
        assert ("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/status/start") in served
        assert ("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot/{{snapname}}/rollback") in served
    assert ("POST", "/nodes/{node}/lxc/{vmid}/status/reset") not in served  # containers have no reset
