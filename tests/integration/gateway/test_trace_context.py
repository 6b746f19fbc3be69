"""Every NATS request a tool call makes carries the call's trace context: the first request and each poll of a
task the call waits for, through a real NATS server to a stand-in worker that records the envelopes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope
from proxmox_mcp_contracts.subjects import ApiOp, WorkerKind
from proxmox_mcp_contracts.trace import TRACEPARENT, trace_id_of
from proxmox_mcp_gateway.bus import BusSettings, WorkerBus
from proxmox_mcp_gateway.calls import CallLimits, ToolExecutor

from tests.support.nats import NatsServer
from tests.unit.gateway.fakes import FakeBus

CLIENT_TRACE = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


@pytest.fixture
async def recorded(nats_server: NatsServer) -> AsyncIterator[list[RequestEnvelope]]:
    """Envelopes that reached the stand-in api-worker, which answers like the unit tests' fake bus."""
    envelopes: list[RequestEnvelope] = []
    answers = FakeBus(task_polls_running=2)
    worker = await nats.connect(nats_server.url)

    async def answer(msg: Msg) -> None:
        envelope = RequestEnvelope.model_validate_json(msg.data)
        envelopes.append(envelope)
        result = await answers.call(WorkerKind.API, ApiOp(envelope.op), envelope.args, cluster=envelope.cluster,
                                    caller=envelope.caller, deadline=envelope.deadline, idempotent=True)
        await msg.respond(ReplyEnvelope(request_id=envelope.request_id, result=result).model_dump_json().encode())

    await worker.subscribe("pmcp.v1.default.api.>", cb=answer)
    try:
        yield envelopes
    finally:
        await worker.close()


async def test_a_waiting_call_sends_its_trace_with_the_request_and_every_task_poll(
    nats_server: NatsServer, recorded: list[RequestEnvelope]
) -> None:
    bus = WorkerBus(BusSettings(nats_url=nats_server.url))
    await bus.connect()
    try:
        executor = ToolExecutor(bus, CallLimits(task_poll_interval=0.01))
        caller = Caller(token_id="trace-test", scope=Scope.OPERATE)
        result: dict[str, Any] = await executor.call(
            "vm_action", {"vmid": 100, "action": "start", "wait": True}, caller, traceparent=CLIENT_TRACE)
        untraced = await executor.call("list_vms", {}, caller)
    finally:
        await bus.close()
    assert result["waited"] is True and untraced["count"] == 0
    ops = [envelope.op for envelope in recorded]
    assert ops == ["vm_action", "task_status", "task_status", "task_status", "list_vms"]
    traced = [envelope.trace[TRACEPARENT] for envelope in recorded[:4]]
    assert len(set(traced)) == 1, "one span of ours for the whole call"
    assert trace_id_of(traced[0]) == trace_id_of(CLIENT_TRACE) and traced[0] != CLIENT_TRACE
    # A call without a client trace starts its own, still sent along.
    own = recorded[4].trace[TRACEPARENT]
    assert trace_id_of(own) != trace_id_of(CLIENT_TRACE)
