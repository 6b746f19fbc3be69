"""The freeze switch in the gateway's one call path: calls above read are refused by their required scope before
anything is sent (and again after a confirmation, which can take minutes), audited as refusals; reads go on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from proxmox_mcp_contracts.control import FreezeState
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_gateway.access import AccessPolicy, CallDecision
from proxmox_mcp_gateway.audit import AuditLog
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, ConfirmHook, ToolExecutor
from proxmox_mcp_gateway.catalog import ToolSpec
from proxmox_mcp_gateway.principal import Principal
from proxmox_mcp_runtime.control import ControlTiming, FreezeGuard, Observation
from proxmox_mcp_runtime.control.guard import ProblemCallback, StateCallback, Stoppable
from pydantic import BaseModel

from tests.unit.gateway.fakes import FakeBus

FROZEN = FreezeState().with_change(frozen=True, by="pmcp-ops", at=datetime(2026, 5, 1, tzinfo=UTC),
                                   reason="breach drill", via="rest")
ADMIN = Principal(token_id="tok-admin", scope=Scope.ADMIN, command_profile="admin", address="10.0.0.9")


class Source:
    def __init__(self, state: FreezeState) -> None:
        self.state = state
        self.revision = 1

    async def read(self) -> Observation:
        return Observation(self.state, self.revision)

    async def watch(self, on_state: StateCallback, on_problem: ProblemCallback) -> Stoppable:
        raise NotImplementedError


def make(tmp_path: Path, source: Source, confirm: ConfirmHook | None = None) -> tuple[ToolExecutor, FakeBus, Path]:
    bus = FakeBus()
    audit = tmp_path / "audit.jsonl"
    guard = FreezeGuard(source, ControlTiming(interval=0.5, stale_after=2.0, timeout=1.0))
    security = CallSecurity(access=AccessPolicy(), audit=AuditLog(audit), confirm=confirm, freeze=guard)
    return ToolExecutor(cast(Any, bus), CallLimits(), security), bus, audit


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


ABOVE_READ = [
    ("vm_action", {"vmid": 100, "node": "pve1", "action": "start"}),
    ("execute_command", {"command": "uptime"}),
    ("proxmox_api", {"method": "POST", "path": "/nodes/pve1/qemu/100/status/start"}),
    ("proxmox_api", {"method": "GET", "path": "/access/users"}),  # admin-only even as a GET
    ("delete_snapshot", {"vmid": 100, "node": "pve1", "name": "s1", "confirm": True}),
]


@pytest.mark.parametrize(("tool", "args"), ABOVE_READ, ids=[f"{t}-{i}" for i, (t, _) in enumerate(ABOVE_READ)])
async def test_a_frozen_deployment_refuses_calls_above_read_before_any_request_and_audits_it(
    tmp_path: Path, tool: str, args: dict[str, Any]
) -> None:
    executor, bus, audit = make(tmp_path, Source(FROZEN))
    with pytest.raises(ServiceFailure) as caught:
        await executor.call(tool, args, ADMIN, transport="test")
    assert caught.value.code is ErrorCode.PERMISSION_DENIED and "breach drill" in caught.value.info.message
    assert bus.sent == []
    [entry] = records(audit)
    assert entry["result"] == "permission_denied" and entry["decision"]["allowed"] is False
    assert "the deployment is frozen" in entry["decision"]["reason"]


@pytest.mark.parametrize(("tool", "args"), [("list_vms", {}), ("proxmox_api", {"method": "GET", "path": "/nodes"}),
                                            ("node_status", {})])
async def test_reads_go_on_while_frozen(tmp_path: Path, tool: str, args: dict[str, Any]) -> None:
    executor, bus, _ = make(tmp_path, Source(FROZEN))
    await executor.call(tool, args, ADMIN, transport="test")
    assert len(bus.sent) == 1


async def test_a_frozen_deployment_asks_nobody_to_confirm_a_call_it_would_refuse(tmp_path: Path) -> None:
    asked: list[str] = []

    async def confirm(spec: ToolSpec, args: BaseModel, who: Caller, decision: CallDecision) -> None:
        asked.append(spec.name)

    executor, bus, _ = make(tmp_path, Source(FROZEN), confirm=confirm)
    with pytest.raises(ServiceFailure):
        await executor.call("vm_action", {"vmid": 100, "node": "pve1", "action": "stop"}, ADMIN, transport="test")
    assert asked == [] and bus.sent == []


async def test_a_freeze_while_the_user_confirms_refuses_the_call_after_the_confirmation(tmp_path: Path) -> None:
    source = Source(FreezeState())

    async def confirm(spec: ToolSpec, args: BaseModel, who: Caller, decision: CallDecision) -> None:
        source.state, source.revision = FROZEN, 2
        await executor.security.freeze.refresh()  # type: ignore[union-attr]

    executor, bus, _ = make(tmp_path, source, confirm=confirm)
    with pytest.raises(ServiceFailure) as caught:
        await executor.call("vm_action", {"vmid": 100, "node": "pve1", "action": "stop"}, ADMIN, transport="test")
    assert caught.value.code is ErrorCode.PERMISSION_DENIED and bus.sent == []
