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
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_extra as x
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
from proxmox_mcp_gateway.catalog import TaskMode, ToolSpec
from proxmox_mcp_gateway.clusters import ClusterNames
from proxmox_mcp_gateway.confirm import ConfirmationChannel, ConfirmationPending, bound_channel
from proxmox_mcp_gateway.limits import CallLimiter
from proxmox_mcp_gateway.metrics import CANCELLED, tool_in_flight
from proxmox_mcp_gateway.oauth.principal import OAuthPrincipal
from proxmox_mcp_gateway.tasks import ProgressFn, TaskFollower
from proxmox_mcp_gateway.tool_args import worker_payload

__all__ = ["CallLimits", "CallSecurity", "CallState", "ConfirmHook", "ProgressFn", "ToolExecutor"]

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
    limiter: CallLimiter | None = None
    audit: AuditLog | None = None
    redactor: Redactor = DEFAULT_REDACTOR
    confirm: ConfirmHook | None = None
    observer: CallObserver | None = None
    freeze: FreezeGuard | None = None
    """The freeze switch: calls that need more than read are refused while frozen or while it is unknown."""


@dataclass
class CallState:
    """What a call has set going, for the record of a call that ends early (cancelled)."""

    upid: str | None = None
    waiting: bool = False


def parse_args(spec: ToolSpec, raw: dict[str, Any] | None) -> BaseModel:
    try:
        return spec.args_model.model_validate(raw or {})
    except ValidationError as exc:
        raise ServiceFailure(
            ErrorCode.INVALID_ARGUMENT, f"invalid arguments for {spec.name}: {describe_validation_error(exc)}"
        ) from None


class ToolExecutor:
    def __init__(self, bus: WorkerBus, limits: CallLimits, security: CallSecurity | None = None) -> None:
        self.bus = bus
        self.limits = limits
        self.security = security or CallSecurity()
        self.clusters = ClusterNames.of(limits.default_cluster, limits.clusters)
        self.tasks = TaskFollower(bus, poll_interval=limits.task_poll_interval, api_timeout=limits.api_timeout,
                                  redactor=self.security.redactor)

    def visible_tools(self, caller: Caller) -> list[ToolSpec]:
        return self.security.access.visible_tools(caller)

    def lookup(self, name: str, caller: Caller) -> ToolSpec:
        return self.security.access.lookup(name, caller)

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
        own = child_traceparent(traceparent)
        request_id = request_id or uuid.uuid4().hex
        with log_context(request_id=request_id, trace_id=trace_id_of(own)):
            return await self._call(name, raw_args, caller, progress, transport, request_id, confirmation,
                                    any_offered, own)

    async def _call(
        self, name: str, raw_args: dict[str, Any] | None, caller: Caller, progress: ProgressFn | None,
        transport: str, request_id: str, confirmation: ConfirmationChannel | None, any_offered: bool,
        traceparent: str,
    ) -> dict[str, Any]:
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
                    sec.limiter.check_rate(caller.token_id, name)
                spec = sec.access.lookup(name, caller, any_offered=any_offered)
                slot = sec.limiter.running(caller.token_id) if sec.limiter is not None else contextlib.nullcontext()
                with slot:
                    args = parse_args(spec, raw_args)
                    cluster = self.clusters.resolve(getattr(args, "cluster", None))
                    record["cluster"] = cluster
                    decision = sec.access.authorize(spec, args, caller)
                    await self._check_freeze(spec, args, decision)
                    if decision.destructive and sec.confirm is not None:
                        with bound_channel(confirmation):
                            await sec.confirm(spec, args, caller, decision)
                        await self._check_freeze(spec, args, decision)  # a confirmation can take minutes
                    if not spec.idempotent_call(args) and sec.audit is not None:
                        await sec.audit.append({**record, "event": "tool_call_started",
                                                "decision": decision.as_record()})
                    dispatched = True
                    with tool_in_flight(spec.name):
                        result = await self._dispatch(spec, args, caller, cluster, progress,
                                                     request_id, traceparent, state)
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
            await self._audit(record, started, decision, failure.info, denied=not dispatched, upid=state.upid)
            raise
        except ConfirmationPending:
            assert decision is not None
            await self._audit_event(record, "confirmation_requested", decision)
            raise
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self._audit_cancelled(record, started, decision, dispatched, state)
            raise
        except AuditError:
            raise ServiceFailure(ErrorCode.INTERNAL, "the audit log could not be written, so the call was not "
                                 "performed; an operator must fix the audit log") from None
        clean = sec.redactor.redact_value(result)
        await self._audit(record, started, decision, None, upid=_upid_of(clean))
        return clean

    async def _check_freeze(self, spec: ToolSpec, args: BaseModel, decision: CallDecision) -> None:
        if self.security.freeze is not None:
            needed = Scope(decision.required_scope) if decision.required_scope else spec.required_scope(args)
            await self.security.freeze.check(needed)

    async def _audit_event(self, record: dict[str, Any], event: str, decision: CallDecision) -> None:
        if self.security.audit is not None:
            await self.security.audit.append({**record, "event": event, "decision": decision.as_record()})

    async def _audit_cancelled(self, record: dict[str, Any], started: float, decision: CallDecision | None,
                               dispatched: bool, state: CallState) -> None:
        """The record of a call the client gave up on. A task it started goes on in Proxmox: say which."""
        if state.waiting and state.upid:
            message = (f"cancelled by the client while waiting for task {state.upid}; the task goes on in Proxmox "
                       "(follow it with wait_task or task_status)")
        elif dispatched:
            message = "cancelled by the client after the request went to the worker; its outcome is unknown"
        else:
            message = "cancelled by the client before anything was sent to a worker"
        entry: dict[str, Any] = {**record, "result": CANCELLED, "message": message,
                                 "duration_ms": round((time.monotonic() - started) * 1000, 2)}
        if decision is not None:
            entry["decision"] = decision.as_record()
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
                     *, denied: bool = False, upid: str | None = None) -> None:
        seconds = time.monotonic() - started
        code, details = (error.code.value, error.details) if error else ("ok", {})
        try:
            if self.security.audit is not None:
                entry = {**record, "decision": decision.as_record(), "result": code,
                         "duration_ms": round(seconds * 1000, 2)}
                if error is not None:
                    entry["message"] = error.message
                if upid:
                    entry["upid"] = upid
                await self.security.audit.append(entry)
        except AuditError:
            code, details = ErrorCode.INTERNAL.value, {}
            # Fail closed: a call whose record is not durable does not answer with its result.
            raise ServiceFailure(ErrorCode.INTERNAL, "the audit log could not be written; the result of this call "
                                 "is withheld" + ("" if denied else " (the operation itself may have run)")) from None
        finally:
            if self.security.observer is not None:
                with contextlib.suppress(Exception):
                    self.security.observer(record["tool"], code, seconds, details)

    def _clean(self, exc: ServiceFailure) -> ServiceFailure:
        info = exc.info
        return ServiceFailure(info.code, self.security.redactor.sanitize_error(info.message),
                              retryable=info.retryable, details=self.security.redactor.redact_value(info.details))

    async def _dispatch(self, spec: ToolSpec, args: BaseModel, caller: Caller, cluster: str,
                        progress: ProgressFn | None, request_id: str, traceparent: str,
                        state: CallState) -> dict[str, Any]:
        # Workers see the scope the gateway granted (read-only mode lowers it), never more.
        effective = self.security.access.effective_scope(caller)
        caller = caller if effective is caller.scope else caller.model_copy(update={"scope": effective})
        if spec.task is TaskMode.FOLLOWS:
            assert isinstance(args, x.WaitTaskArgs)
            state.upid = args.upid
            state.waiting = True
            task = await self.tasks.follow(args.upid, cluster, caller, timeout=args.timeout, progress=progress,
                                           traceparent=traceparent)
            return _checked(spec, task.model_dump(mode="json"))
        if isinstance(args, t.ExecuteCommandArgs):
            args.timeout = min(args.timeout, self.limits.max_command_timeout)
            deadline = time.time() + args.timeout + self.limits.command_grace
        elif isinstance(args, x.ContainerExecArgs | x.GuestExecArgs):
            args.timeout = min(args.timeout, self.limits.max_command_timeout)
            deadline = time.time() + max(args.timeout + self.limits.command_grace, self.limits.api_timeout)
        else:
            deadline = time.time() + self.limits.api_timeout
        result = await self.bus.call(
            spec.kind, spec.op, worker_payload(args, dict(spec.fixed)), cluster=cluster, caller=caller,
            deadline=deadline, idempotent=spec.idempotent_call(args), request_id=request_id, traceparent=traceparent,
        )
        if spec.task is TaskMode.STARTS and getattr(args, "wait", False):
            result = await self._wait_for_task(result, args, caller, cluster, progress, traceparent, state)
        return _checked(spec, result)

    async def _wait_for_task(
        self, started: dict[str, Any], args: BaseModel, caller: Caller, cluster: str,
        progress: ProgressFn | None, traceparent: str, state: CallState,
    ) -> dict[str, Any]:
        """Follow the task a tool started (its result names upid and node) and put the finished task into it."""
        upid = started.get("upid")
        if not isinstance(upid, str):
            raise ServiceFailure(ErrorCode.INTERNAL, "the worker started a task but sent no task id")
        state.upid = upid
        state.waiting = True
        timeout = float(getattr(args, "wait_timeout", 300))
        try:
            task = await self.tasks.follow(upid, cluster, caller, timeout=timeout, progress=progress,
                                           traceparent=traceparent)
        except ServiceFailure as exc:
            if exc.code is ErrorCode.TIMEOUT:
                raise
            raise ServiceFailure(exc.code, f"{exc.info.message} (while following task {upid}, which was started "
                                 "and goes on in Proxmox)", retryable=False, details={**exc.info.details,
                                                                                      "upid": upid}) from None
        return {**started, "task": task.model_dump(mode="json"), "waited": True}


def _upid_of(result: dict[str, Any]) -> str | None:
    upid = result.get("upid")
    if isinstance(upid, str):
        return upid
    data = result.get("data")
    if isinstance(data, str) and data.startswith("UPID:"):
        return data
    return None


def _checked(spec: ToolSpec, result: dict[str, Any]) -> dict[str, Any]:
    try:
        return spec.result_model.model_validate(result).model_dump(mode="json")
    except ValidationError:
        raise ServiceFailure(ErrorCode.INTERNAL, f"the worker's {spec.name} result did not match its schema") from None
