"""Tool arguments: what the gateway keeps for itself and what a worker is sent."""

from __future__ import annotations

from pathlib import Path

from proxmox_mcp_contracts.envelope import Scope

from tests.unit.gateway.executors import make
from tests.unit.gateway.test_calls import caller


async def test_gateway_only_arguments_never_reach_the_worker(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path)
    await executor.call("vm_action", {"vmid": 100, "action": "stop", "confirm": True, "cluster": "default"},
                        caller(Scope.OPERATE))
    assert bus.sent[0].args == {"vmid": 100, "action": "stop", "wait": False, "wait_timeout": 300}
