"""Runs one tool call for any front end (MCP over HTTP or stdio, REST): the one place every call passes.

Order: rate limits -> tool access (scope, allowlist, read-only, exposure profile) -> concurrency slot ->
argument validation -> cluster (known names only) -> argument policy (command policy, proxmox_api rules) ->
freeze switch (calls above read) -> confirmation of destructive calls (then the freeze switch again) -> audit
"started" (for calls that change something) -> NATS (and following the task when asked to wait) -> redaction ->
audit record (fsync'd) -> reply. Every refusal is audited too, and so is a call the client cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
from proxmox_mcp_contracts.trace import child_traceparent, trace_id_of
from proxmox_mcp_runtime.control import FreezeGuard
from proxmox_mcp_runtime.logs import log_context
from proxmox_mcp_runtime.redact import DEFAULT_REDACTOR, Redactor
from proxmox_mcp_runtime.validation_errors import describe_validation_error
from pydantic import BaseModel, ValidationError

from proxmox_mcp_gateway.access import AccessPolicy, CallDecision
from proxmox_mcp_gateway.audit import AuditError, AuditLog, utc_timestamp
from proxmox_mcp_gateway.bus import WorkerBus
from proxmox_mcp_gateway.catalog import ToolSpec
from proxmox_mcp_gateway.clusters import ClusterNames
from proxmox_mcp_gateway.confirm import ConfirmationChannel, ConfirmationPending, bound_channel
from proxmox_mcp_gateway.dispatch import CallRequest, CallRunner, CallState, DispatchLimits, TaskTicket, upid_of
from proxmox_mcp_gateway.idempotency import IdempotencyLedger
from proxmox_mcp_gateway.limits import Limiter
from proxmox_mcp_gateway.metrics import CANCELLED, tool_in_flight
from proxmox_mcp_gateway.oauth.principal import OAuthPrincipal
from proxmox_mcp_gateway.task_runs import TaskRuns
from proxmox_mcp_gateway.tasks import ProgressFn, TaskFollower

__all__ = ["CallLimits", "CallSecurity", "CallState", "ConfirmHook", "ProgressFn", "TaskTicket", "ToolExecutor"]

log = logging.getLogger(__name__)

ConfirmHook = Callable[[ToolSpec, BaseModel, Caller, CallDecision], Awaitable[None]]
"""Called before dispatch when decision.destructive; raise ServiceFailure to refuse (confirm.ConfirmPolicy)."""
CallObserver = Callable[[str, str, float, dict[str, Any]], None]
"""(tool, result code 'ok' or the ErrorCode value, seconds, error details) once per call: the metrics hook."""


@dataclass(frozen=True)
class CallLimits:
    api_timeout: float = 30.0
    """Seconds a single API worker call may take end to end."""
    max_command_timeout: int = 300
    """execute_command's timeout is capped at this many seconds."""
    command_grace: float = 5.0
    """Extra seconds the gateway waits past a command's own timeout for the worker's answer."""
    task_poll_interval: float = 0.5
    """How often a waiting call polls its Proxmox task."""
    default_cluster: str = "default"
    clusters: tuple[str, ...] = ()
    """The cluster names calls may name (empty: only the default cluster)."""


@dataclass
class CallSecurity:
    """The security parts of the call path; the defaults (no limits, no audit) suit in-process tools/benches."""

    access: AccessPolicy = field(default_factory=AccessPolicy)
    limiter: Limiter | None = None
    audit: AuditLog | None = None
    redactor: Redactor = DEFAULT_REDACTOR
    confirm: ConfirmHook | None = None
    observer: CallObserver | None = None
    freeze: FreezeGuard | None = None
    """The freeze switch: calls that need more than read are refused while frozen or while it is unknown."""


def _audit_failure(exc: AuditError, message: str, *, performed: bool) -> ServiceFailure:
    """A record that could not be stored: `internal` when the local file failed (an operator must fix it),
    `unavailable` when only the replicated stream did not answer (another gateway, or this one a little later,
    may work: retryable when nothing was performed)."""
    if exc.unavailable:
        return ServiceFailure(ErrorCode.UNAVAILABLE, message, retryable=not performed)
    return ServiceFailure(ErrorCode.INTERNAL, message + "; an operator must fix the audit log")


def parse_args(spec: ToolSpec, raw: dict[str, Any] | None) -> BaseModel:
    try:
        return spec.args_model.model_validate(raw or {})
    except ValidationError as exc:
        raise ServiceFailure(
            ErrorCode.INVALID_ARGUMENT, f"invalid arguments for {spec.name}: {describe_validation_error(exc)}"
        ) from None


class ToolExecutor:
    def __init__(self, bus: WorkerBus, limits: CallLimits, security: CallSecurity | None = None, *,
                 follower: TaskFollower | None = None, ledger: IdempotencyLedger | None = None,
                 tasks: TaskRuns | None = None) -> None:
        """ledger: idempotency keys are honoured (else ignored); tasks: long calls may become tasks."""
        self.bus = bus
        self.limits = limits
        self.security = security or CallSecurity()
        self.clusters = ClusterNames.of(limits.default_cluster, limits.clusters)
        self.tasks = follower or TaskFollower(bus, poll_interval=limits.task_poll_interval,
                                              api_timeout=limits.api_timeout, redactor=self.security.redactor)
        self.task_runs = tasks
        self.runner = CallRunner(bus, DispatchLimits(api_timeout=limits.api_timeout,
                                                     max_command_timeout=limits.max_command_timeout,
                                                     command_grace=limits.command_grace),
                                 self.tasks, redactor=self.security.redactor, ledger=ledger, tasks=tasks)

    def visible_tools(self, caller: Caller) -> list[ToolSpec]:
        return self.security.access.visible_tools(caller)

    def lookup(self, name: str, caller: Caller) -> ToolSpec:
        return self.security.access.lookup(name, caller)

    def admission(self, name: str, caller: Caller) -> ServiceFailure | None:
        """Why a call of tool `name` would be refused before its arguments are even read (the token may not call
        the tool, or a rate limit is reached), or None. Nothing is consumed: the call itself checks again. An
        unknown name is None: the body decides (the SDK answers a header/body mismatch, the call an unknown tool)."""
        sec = self.security
        try:
            sec.access.lookup(name, caller)
        except ServiceFailure as exc:
            return None if exc.code is ErrorCode.INVALID_ARGUMENT else exc
        if sec.limiter is not None:
            return sec.limiter.refusal(caller.token_id, name)
        return None

    async def call(
        self, name: str, raw_args: dict[str, Any] | None, caller: Caller, progress: ProgressFn | None = None,
        *, transport: str = "internal", request_id: str | None = None,
        confirmation: ConfirmationChannel | None = None, any_offered: bool = False, traceparent: str | None = None,
    ) -> dict[str, Any]:
        """The tool's structured result (redacted), or ServiceFailure with a sanitized message.

        confirmation: how this front end can ask the user (None: only confirm=true confirms).
        any_offered: also tools the exposure profile leaves out (resource reads).
        traceparent: the client's trace context; the call joins that trace (else it starts one).
        ConfirmationPending propagates: the front end asks through its protocol and the call is made again."""
        result = await self.call_with_tasks(name, raw_args, caller, progress, transport=transport,
                                            request_id=request_id, confirmation=confirmation,
                                            any_offered=any_offered, traceparent=traceparent)
        assert isinstance(result, dict)
        return result

    async def call_with_tasks(
        self, name: str, raw_args: dict[str, Any] | None, caller: Caller, progress: ProgressFn | None = None,
        *, transport: str = "internal", request_id: str | None = None,
        confirmation: ConfirmationChannel | None = None, any_offered: bool = False, traceparent: str | None = None,
        as_task: bool = False,
    ) -> dict[str, Any] | TaskTicket:
        """call(), for a front end whose client may take a task for long work (as_task: the 2026 tasks
        extension): a TaskTicket instead of the result when the call became a task."""
        own = child_traceparent(traceparent)
        request_id = request_id or uuid.uuid4().hex
        with log_context(request_id=request_id, trace_id=trace_id_of(own)):
            return await self._call(name, raw_args, caller, progress, transport, request_id, confirmation,
                                    any_offered, own, as_task)

    async def _call(
        self, name: str, raw_args: dict[str, Any] | None, caller: Caller, progress: ProgressFn | None,
        transport: str, request_id: str, confirmation: ConfirmationChannel | None, any_offered: bool,
        traceparent: str, as_task: bool,
    ) -> dict[str, Any] | TaskTicket:
        sec = self.security
        started = time.monotonic()
        record: dict[str, Any] = {
            "ts": utc_timestamp(), "event": "tool_call", "request_id": request_id,
            "trace_id": trace_id_of(traceparent),
            "token_id": caller.token_id, "client": caller.address, "transport": transport, "tool": name[:200],
            "arguments": sec.redactor.redact_value(raw_args or {}),
        }
        if isinstance(caller, OAuthPrincipal):  # who the provider says the caller is (never the token)
            record["oauth"] = caller.audit_identity()
        decision: CallDecision | None = None
        dispatched = False
        state = CallState()
        try:
            try:
                if sec.limiter is not None:
                    await sec.limiter.admit(caller.token_id, name)
                spec = sec.access.lookup(name, caller, any_offered=any_offered)
                slot = sec.limiter.slot(caller.token_id) if sec.limiter is not None else contextlib.nullcontext()
                async with slot:
                    args = parse_args(spec, raw_args)
                    cluster = self.clusters.resolve(getattr(args, "cluster", None))
                    record["cluster"] = cluster
                    key = getattr(args, "idempotency_key", None)
                    if key is not None:
                        record["idempotency_key"] = sec.redactor.redact_text(key)
                    decision = sec.access.authorize(spec, args, caller)
                    await self._check_freeze(spec, args, decision)
                    if decision.destructive and sec.confirm is not None:
                        with bound_channel(confirmation):
                            await sec.confirm(spec, args, caller, decision)
                        await self._check_freeze(spec, args, decision)  # a confirmation can take minutes
                    if not spec.idempotent_call(args) and sec.audit is not None:
                        await sec.audit.append({**record, "event": "tool_call_started",
                                                "decision": self._decision_record(decision)})
                    dispatched = True
                    with tool_in_flight(spec.name):
                        result = await self.runner.run(CallRequest(
                            spec=spec, args=args, caller=self._as_granted(caller), cluster=cluster,
                            request_id=request_id, traceparent=traceparent, progress=progress, as_task=as_task),
                            state)
            except ServiceFailure as exc:
                raise self._clean(exc) from None
            except (AuditError, ConfirmationPending, asyncio.CancelledError):
                raise
            except Exception as exc:  # never leak a traceback or an internal detail to the client
                log.error("tool call failed", extra={"tool": name, "error_type": type(exc).__name__,
                                                     "request_id": request_id})
                raise ServiceFailure(ErrorCode.INTERNAL, "the gateway failed on this call") from None
        except ServiceFailure as failure:
            if not dispatched:  # refused by the gateway (limits, scope, policy, confirmation): say so and why
                decision = decision or CallDecision(allowed=False, reason="")
                decision.allowed, decision.reason = False, failure.info.message
            assert decision is not None
            await self._audit(record, started, decision, failure.info, denied=not dispatched, state=state)
            raise
        except ConfirmationPending:
            assert decision is not None
            await self._audit_event(record, "confirmation_requested", decision)
            raise
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self._audit_cancelled(record, started, decision, state)
            raise
        except AuditError as exc:
            raise _audit_failure(exc, f"{exc}, so the call was not performed", performed=False) from None
        if isinstance(result, TaskTicket):
            await self._audit(record, started, decision, None, state=state)
            return result
        clean = sec.redactor.redact_value(result)
        state.upid = state.upid or upid_of(clean)
        await self._audit(record, started, decision, None, state=state)
        return clean

    def _decision_record(self, decision: CallDecision) -> dict[str, Any]:
        """The decision as audited: its argv is the command, which may carry a secret (password=...)."""
        return self.security.redactor.redact_value(decision.as_record())

    def _as_granted(self, caller: Caller) -> Caller:
        """Workers see the scope the gateway granted (read-only mode lowers it), never more."""
        effective = self.security.access.effective_scope(caller)
        return caller if effective is caller.scope else caller.model_copy(update={"scope": effective})

    async def _check_freeze(self, spec: ToolSpec, args: BaseModel, decision: CallDecision) -> None:
        if self.security.freeze is not None:
            needed = Scope(decision.required_scope) if decision.required_scope else spec.required_scope(args)
            await self.security.freeze.check(needed)

    async def _audit_event(self, record: dict[str, Any], event: str, decision: CallDecision) -> None:
        if self.security.audit is not None:
            await self.security.audit.append({**record, "event": event, "decision": self._decision_record(decision)})

    async def _audit_cancelled(self, record: dict[str, Any], started: float, decision: CallDecision | None,
                               state: CallState) -> None:
        """The record of a call the client gave up on. A task it started goes on in Proxmox: say which."""
        if state.waiting and state.upid:
            message = (f"cancelled by the client while waiting for task {state.upid}; the task goes on in Proxmox "
                       "(follow it with wait_task or task_status)")
        elif state.sent and state.idempotency_key is not None:
            message = ("cancelled by the client after the request went to the worker; the gateway saw it through "
                       "and recorded its outcome under the idempotency key: a retry with the same key answers it")
        elif state.sent:
            message = "cancelled by the client after the request went to the worker; its outcome is unknown"
        else:
            message = "cancelled by the client before anything was sent to a worker"
        entry: dict[str, Any] = {**record, "result": CANCELLED, "message": message,
                                 "duration_ms": round((time.monotonic() - started) * 1000, 2)}
        if decision is not None:
            entry["decision"] = self._decision_record(decision)
        if state.upid:
            entry["upid"] = state.upid
        try:
            if self.security.audit is not None:
                await self.security.audit.append(entry)
        except AuditError:
            log.error("could not audit a cancelled call", extra={"tool": record["tool"]})
        finally:
            if self.security.observer is not None:
                with contextlib.suppress(Exception):
                    self.security.observer(record["tool"], CANCELLED, time.monotonic() - started, {})

    async def _audit(self, record: dict[str, Any], started: float, decision: CallDecision, error: ErrorInfo | None,
                     *, state: CallState, denied: bool = False) -> None:
        seconds = time.monotonic() - started
        code, details = (error.code.value, error.details) if error else ("ok", {})
        try:
            if self.security.audit is not None:
                entry = {**record, "decision": self._decision_record(decision), "result": code,
                         "duration_ms": round(seconds * 1000, 2), **_outcome_fields(state)}
                if error is not None:
                    entry["message"] = error.message
                await self.security.audit.append(entry)
        except AuditError as exc:
            failure = _audit_failure(exc, f"{exc}, so the call was refused and not performed" if denied else
                                     f"{exc}; the result of this call is withheld (the operation itself may have run)",
                                     performed=not denied)
            code, details = failure.info.code.value, {}
            # Fail closed: a call whose record is not durable does not answer with its result.
            raise failure from None
        finally:
            if self.security.observer is not None:
                with contextlib.suppress(Exception):
                    self.security.observer(record["tool"], code, seconds, details)

    def _clean(self, exc: ServiceFailure) -> ServiceFailure:
        info = exc.info
        return ServiceFailure(info.code, self.security.redactor.sanitize_error(info.message),
                              retryable=info.retryable, details=self.security.redactor.redact_value(info.details))


def _outcome_fields(state: CallState) -> dict[str, Any]:
    """What the call set going, for its audit record: the Proxmox task, the MCP task, a replayed answer."""
    fields: dict[str, Any] = {}
    if state.upid:
        fields["upid"] = state.upid
    if state.task_id:
        fields["task_id"] = state.task_id
    if state.replayed:
        fields["idempotent_replay"] = True
    return fields
