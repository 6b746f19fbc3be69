"""What a call does once the gateway allowed it: the worker request, following the task it started (wait), handing
long work to the tasks extension as a task, and honouring idempotency keys.

- A task-starting tool (TaskMode.STARTS) with wait=true follows its Proxmox task in the call (progress notes),
  unless the client takes tasks (2026 tasks extension): then a durable task record is opened for the UPID and the
  call answers at once with it. wait_task (TaskMode.FOLLOWS) opens a task for the UPID it was given.
- A mutating call with an idempotency key claims the key before its request goes out; from then on the client
  going away does not stop the request half-way (its outcome is recorded for the retry). A retry with the key is
  answered from the record: the same result or error, the same task, or the same Proxmox task followed again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.kv import KvError
from proxmox_mcp_runtime.redact import Redactor
from pydantic import BaseModel, ValidationError

from proxmox_mcp_gateway.bus import WorkerBus
from proxmox_mcp_gateway.catalog import TaskMode, ToolSpec
from proxmox_mcp_gateway.idempotency import Claim, IdempotencyLedger, KeyRecord, Phase
from proxmox_mcp_gateway.task_records import TaskRecord
from proxmox_mcp_gateway.task_runs import Opening, TaskRuns, TaskStoreUnavailable
from proxmox_mcp_gateway.task_sources import PROXMOX
from proxmox_mcp_gateway.tasks import ProgressFn, TaskFollower
from proxmox_mcp_gateway.tool_args import worker_payload

log = logging.getLogger(__name__)

WAIT_FIELDS = frozenset({"wait", "wait_timeout"})
"""How the caller wants the answer, not what the operation is: a retry may change them."""


@dataclass
class CallState:
    """What a call has set going, for its audit record (also of a call that ends early)."""

    upid: str | None = None
    waiting: bool = False
    sent: bool = False
    """The request went out to a worker (its outcome is then unknown to a call cut short)."""
    task_id: str | None = None
    idempotency_key: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class TaskTicket:
    """The answer of a call whose long work became a task of the tasks extension."""

    record: TaskRecord


@dataclass(frozen=True)
class CallRequest:
    """One allowed call on its way to the worker."""

    spec: ToolSpec
    args: BaseModel
    caller: Caller
    cluster: str
    request_id: str
    traceparent: str
    progress: ProgressFn | None = None
    as_task: bool = False
    """The client takes a task for long work (it declared the tasks extension on this request)."""


@dataclass(frozen=True)
class DispatchLimits:
    api_timeout: float
    max_command_timeout: int
    command_grace: float


class CallRunner:
    def __init__(self, bus: WorkerBus, limits: DispatchLimits, follower: TaskFollower, *, redactor: Redactor,
                 ledger: IdempotencyLedger | None = None, tasks: TaskRuns | None = None) -> None:
        self.bus = bus
        self.limits = limits
        self.follower = follower
        self.redactor = redactor
        self.ledger = ledger
        self.tasks = tasks

    async def run(self, call: CallRequest, state: CallState) -> dict[str, Any] | TaskTicket:
        spec, args = call.spec, call.args
        if spec.task is TaskMode.FOLLOWS:
            assert isinstance(args, x.WaitTaskArgs)
            state.upid = args.upid
            if self._takes_task(call):
                ticket = await self._open(call, state, args.upid, started=None, key=None)
                if ticket is not None:
                    return ticket
            state.waiting = True
            task = await self.follower.follow(args.upid, call.cluster, call.caller, timeout=args.timeout,
                                              progress=call.progress, traceparent=call.traceparent)
            return checked(spec, task.model_dump(mode="json"))
        key: str | None = getattr(args, "idempotency_key", None)
        if key is None or self.ledger is None or spec.idempotent_call(args):
            state.sent = True
            return await self._after_request(call, state, await self._request(call), None)
        state.idempotency_key = key
        operation = {k: v for k, v in worker_payload(args, dict(spec.fixed)).items() if k not in WAIT_FIELDS}
        claimed = await self.ledger.claim(call.caller.token_id, key, tool=spec.name, cluster=call.cluster,
                                          operation=operation)
        if isinstance(claimed, KeyRecord):
            state.replayed = True
            return await self._replay(call, state, claimed)
        started: dict[str, Any] = {}
        try:
            # The client going away must not cut a claimed call in half: its outcome is what a retry answers.
            # (No checkpoint lies between the claim and this scope, so a claimed key always gets its request.)
            with anyio.CancelScope(shield=True):
                state.sent = True
                started = await self._request(call)
        except ServiceFailure as exc:
            await self._record_failure(claimed, exc)
            raise
        return await self._after_request(call, state, started, claimed)

    def _takes_task(self, call: CallRequest) -> bool:
        return (call.as_task and self.tasks is not None and call.spec.task is not TaskMode.NONE
                and (call.spec.task is TaskMode.FOLLOWS or bool(getattr(call.args, "wait", False))))

    async def _record_failure(self, claim: Claim, exc: ServiceFailure) -> None:
        assert self.ledger is not None
        with anyio.CancelScope(shield=True):
            if exc.info.retryable:  # nothing happened: the key stays free for the retry
                await self.ledger.release(claim)
            else:
                info = exc.info.model_copy(update={"message": self.redactor.sanitize_error(exc.info.message),
                                                   "details": self.redactor.redact_value(exc.info.details)})
                await self.ledger.finished(claim, error=info)

    async def _after_request(self, call: CallRequest, state: CallState, started: dict[str, Any],
                             claim: Claim | None) -> dict[str, Any] | TaskTicket:
        spec = call.spec
        if spec.task is not TaskMode.STARTS:
            result = checked(spec, started)
            if claim is not None:
                await self._finish(claim, result)
            return result
        upid = started.get("upid")
        if not isinstance(upid, str):
            raise ServiceFailure(ErrorCode.INTERNAL, "the worker started a task but sent no task id")
        state.upid = upid
        clean = self.redactor.redact_value(started)
        ticket = None
        if self._takes_task(call):
            with anyio.CancelScope(shield=True):
                ticket = await self._open(call, state, upid, started=clean, key=claim.key if claim else None)
        if claim is not None:
            assert self.ledger is not None
            with anyio.CancelScope(shield=True):
                await self.ledger.started(claim, upid=upid, started=clean,
                                          task_id=ticket.record.task_id if ticket else None)
        if ticket is not None:
            return ticket
        if not getattr(call.args, "wait", False):
            return checked(spec, started)
        result = checked(spec, await self._wait(call, state, started, upid))
        if claim is not None:
            await self._finish(claim, result)
        return result

    async def _finish(self, claim: Claim, result: dict[str, Any]) -> None:
        assert self.ledger is not None
        with anyio.CancelScope(shield=True):
            await self.ledger.finished(claim, result=self.redactor.redact_value(result))

    async def _replay(self, call: CallRequest, state: CallState, record: KeyRecord) -> dict[str, Any] | TaskTicket:
        """The answer to a retry, from what the first call with the key recorded; never a second request."""
        state.upid = record.upid
        if record.phase is Phase.DONE:
            if record.error is not None:
                raise ServiceFailure(record.error.code, record.error.message, retryable=record.error.retryable,
                                     details={**record.error.details, "idempotent_replay": True})
            return checked(call.spec, record.result or {})
        started = record.started or {}
        if record.task_id is not None and self.tasks is not None and call.as_task:
            try:
                found = await self.tasks.records.load(record.task_id)
            except KvError:  # the store is away: answer as a call without tasks would
                found = None
            if found is not None and found[0].principal == call.caller.token_id:
                state.task_id = record.task_id
                return TaskTicket(found[0])
        if record.upid is not None and self._takes_task(call):
            ticket = await self._open(call, state, record.upid, started=started, key=None)
            if ticket is not None:
                return ticket
        if record.upid is None or not getattr(call.args, "wait", False):
            return checked(call.spec, started)
        return checked(call.spec, await self._wait(call, state, started, record.upid))

    async def _open(self, call: CallRequest, state: CallState, upid: str, *, started: dict[str, Any] | None,
                    key: str | None) -> TaskTicket | None:
        """A durable task for the UPID, or None when the shared state cannot store one now (the call then follows
        the task itself, as for a client without tasks)."""
        assert self.tasks is not None
        try:
            record = await self.tasks.open(Opening(
                principal=call.caller.token_id, tool=call.spec.name, source=PROXMOX, cluster=call.cluster,
                upid=upid, started=started, request_id=call.request_id, idempotency_key=key,
                message=f"following Proxmox task {upid}"))
        except TaskStoreUnavailable:
            log.warning("could not store a task record; following the task in the call instead",
                        extra={"tool": call.spec.name})
            return None
        state.task_id = record.task_id
        return TaskTicket(record)

    async def _request(self, call: CallRequest) -> dict[str, Any]:
        spec, args, limits = call.spec, call.args, self.limits
        if isinstance(args, t.ExecuteCommandArgs):
            args.timeout = min(args.timeout, limits.max_command_timeout)
            deadline = time.time() + args.timeout + limits.command_grace
        elif isinstance(args, x.ContainerExecArgs | x.GuestExecArgs):
            args.timeout = min(args.timeout, limits.max_command_timeout)
            deadline = time.time() + max(args.timeout + limits.command_grace, limits.api_timeout)
        else:
            deadline = time.time() + limits.api_timeout
        return await self.bus.call(
            spec.kind, spec.op, worker_payload(args, dict(spec.fixed)), cluster=call.cluster, caller=call.caller,
            deadline=deadline, idempotent=spec.idempotent_call(args), request_id=call.request_id,
            traceparent=call.traceparent,
        )

    async def _wait(self, call: CallRequest, state: CallState, started: dict[str, Any],
                    upid: str) -> dict[str, Any]:
        """Follow the task a tool started (its result names upid and node) and put the finished task into it."""
        state.upid = upid
        state.waiting = True
        timeout = float(getattr(call.args, "wait_timeout", 300))
        try:
            task = await self.follower.follow(upid, call.cluster, call.caller, timeout=timeout,
                                              progress=call.progress, traceparent=call.traceparent)
        except ServiceFailure as exc:
            if exc.code is ErrorCode.TIMEOUT:
                raise
            raise ServiceFailure(exc.code, f"{exc.info.message} (while following task {upid}, which was started "
                                 "and goes on in Proxmox)", retryable=False, details={**exc.info.details,
                                                                                      "upid": upid}) from None
        return {**started, "task": task.model_dump(mode="json"), "waited": True}


def upid_of(result: dict[str, Any]) -> str | None:
    upid = result.get("upid")
    if isinstance(upid, str):
        return upid
    data = result.get("data")
    if isinstance(data, str) and data.startswith("UPID:"):
        return data
    return None


def checked(spec: ToolSpec, result: dict[str, Any]) -> dict[str, Any]:
    try:
        return spec.result_model.model_validate(result).model_dump(mode="json")
    except ValidationError:
        raise ServiceFailure(ErrorCode.INTERNAL, f"the worker's {spec.name} result did not match its schema") from None
