"""Confirmation of destructive calls: through the client's channel when it has one, else confirm=true; with the bus
faked: what would have gone to NATS is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_gateway.calls import ToolExecutor
from proxmox_mcp_gateway.confirm import Answer, ConfirmationPending, ConfirmPolicy

from tests.unit.gateway.executors import make
from tests.unit.gateway.test_calls import caller, records, refused


class Channel:
    kind = "elicitation"

    def __init__(self, answer: Answer | None = Answer.ACCEPT, error: Exception | None = None,
                 delay: float = 0.0) -> None:
        self.answer, self.error, self.delay = answer, error, delay
        self.asked: list[str] = []

    async def ask(self, message: str) -> Answer:
        self.asked.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if self.answer is None:
            raise ConfirmationPending(message)
        return self.answer


async def test_without_a_channel_only_confirm_true_confirms(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    failure = await refused(executor, caller(Scope.ADMIN), "rollback_snapshot", {"vmid": 100, "name": "s1"})
    assert failure.code is ErrorCode.POLICY_DENIED and failure.info.details["reason"] == "confirmation_required"
    assert bus.sent == []
    assert records(audit)[-1]["decision"]["confirmation"] == "missing"
    await executor.call("rollback_snapshot", {"vmid": 100, "name": "s1", "confirm": True}, caller(Scope.ADMIN))
    assert records(audit)[-1]["decision"]["confirmation"] == "argument" and len(bus.sent) == 1
    await executor.call("vm_action", {"vmid": 100, "action": "start"}, caller(Scope.OPERATE))  # not destructive
    assert "confirmation" not in records(audit)[-1]["decision"]


@pytest.mark.parametrize("answer,reason", [(Answer.DECLINE, "declined"), (Answer.CANCEL, "cancelled")])
async def test_a_user_who_says_no_is_not_overruled_by_confirm_true(tmp_path: Path, answer: Answer,
                                                                   reason: str) -> None:
    executor, bus, audit = make(tmp_path)
    channel = Channel(answer)
    failure = await refused_with(executor, "delete_snapshot", {"vmid": 100, "name": "s1", "confirm": True}, channel)
    assert failure.code is ErrorCode.POLICY_DENIED and reason in failure.info.message and bus.sent == []
    assert records(audit)[-1]["decision"]["confirmation"] == reason
    assert "delete_snapshot" in channel.asked[0] and '"name": "s1"' in channel.asked[0]


async def test_an_accepted_elicitation_runs_the_call(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    result = await executor.call("execute_command", {"command": "qm stop 100"}, caller(Scope.EXEC, "operator"),
                                 confirmation=Channel())
    assert result["exit_code"] == 0 and len(bus.sent) == 1
    assert [r["decision"]["confirmation"] for r in records(audit)] == ["elicitation", "elicitation"]


async def test_a_channel_that_fails_falls_back_to_the_argument_and_a_slow_user_times_out(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path, confirm=ConfirmPolicy(timeout=0.2))
    broken = Channel(error=RuntimeError("client said: not supported"))
    await executor.call("vm_action", {"vmid": 100, "action": "reset", "confirm": True}, caller(Scope.OPERATE),
                        confirmation=broken)
    assert records(audit)[-1]["decision"]["confirmation"] == "argument_after_failure"
    failure = await refused_with(executor, "vm_action", {"vmid": 100, "action": "reset"}, broken)
    assert failure.info.details["reason"] == "confirmation_required"
    failure = await refused_with(executor, "vm_action", {"vmid": 100, "action": "reset"}, Channel(delay=5))
    assert failure.info.details["reason"] == "confirmation_timeout" and len(bus.sent) == 1


async def test_a_pending_confirmation_is_audited_and_sends_nothing(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    with pytest.raises(ConfirmationPending) as caught:
        await executor.call("vm_action", {"vmid": 100, "action": "stop"}, caller(Scope.OPERATE),
                            confirmation=Channel(answer=None))
    assert "vm_action" in caught.value.message and bus.sent == []
    assert records(audit)[-1]["event"] == "confirmation_requested"


async def test_confirmation_can_be_switched_off(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path, confirm=ConfirmPolicy(enabled=False))
    await executor.call("vm_action", {"vmid": 100, "action": "stop"}, caller(Scope.OPERATE))
    assert len(bus.sent) == 1 and records(audit)[-1]["decision"]["confirmation"] == "disabled"


async def refused_with(executor: ToolExecutor, tool: str, args: dict[str, Any], channel: Channel) -> ServiceFailure:
    with pytest.raises(ServiceFailure) as caught:
        await executor.call(tool, args, caller(Scope.ADMIN, "operator"), confirmation=channel)
    return caught.value
