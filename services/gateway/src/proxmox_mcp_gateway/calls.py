"""Runs one tool call for any front end (MCP over HTTP or stdio, REST): the one place every call passes.

Order: rate limits -> tool access (scope, allowlist, read-only) -> concurrency slot -> argument validation ->
argument policy (command policy, proxmox_api rules) -> confirmation hook -> audit "started" (for calls that
change something) -> NATS -> redaction -> audit record (fsync'd) -> reply. Every refusal is audited too.
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

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
from proxmox_mcp_contracts.subjects import ApiOp, WorkerKind
from proxmox_mcp_runtime import metrics
from proxmox_mcp_runtime.redact import DEFAULT_REDACTOR, Redactor
from pydantic import BaseModel, ValidationError

from proxmox_mcp_gateway.access import AccessPolicy, CallDecision
from proxmox_mcp_gateway.audit import AuditError, AuditLog, utc_timestamp
from proxmox_mcp_gateway.bus import WorkerBus
from proxmox_mcp_gateway.catalog import ToolSpec
from proxmox_mcp_gateway.limits import CallLimiter

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
ConfirmHook = Callable[[ToolSpec, BaseModel, Caller, CallDecision], Awaitable[None]]
"""Called before dispatch when decision.destructive; raise ServiceFailure to refuse (issue 7's confirmation)."""
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
    """How often a waiting vm_action polls its Proxmox task."""
    default_cluster: str = "default"


@dataclass
class CallSecurity:
    """The security parts of the call path; the defaults (no limits, no audit) suit in-process tools/benches."""

    access: AccessPolicy = field(default_factory=AccessPolicy)
    limiter: CallLimiter | None = None
    audit: AuditLog | None = None
    redactor: Redactor = DEFAULT_REDACTOR
    confirm: ConfirmHook | None = None
    observer: CallObserver | None = None


def validation_message(exc: ValidationError) -> str:
    """Name each bad argument and why, without echoing the rejected values."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_args(spec: ToolSpec, raw: dict[str, Any] | None) -> BaseModel:
    try:
        return spec.args_model.model_validate(raw or {})
    except ValidationError as exc:
        raise ServiceFailure(
            ErrorCode.INVALID_ARGUMENT, f"invalid arguments for {spec.name}: {validation_message(exc)}"
        ) from None


class ToolExecutor:
    def __init__(self, bus: WorkerBus, limits: CallLimits, security: CallSecurity | None = None) -> None:
        self.bus = bus
        self.limits = limits
        self.security = security or CallSecurity()

    def visible_tools(self, caller: Caller) -> list[ToolSpec]:
        return self.security.access.visible_tools(caller)

    def lookup(self, name: str, caller: Caller) -> ToolSpec:
        return self.security.access.lookup(name, caller)

    async def call(
        self, name: str, raw_args: dict[str, Any] | None, caller: Caller, progress: ProgressFn | None = None,
        *, transport: str = "internal", request_id: str | None = None,
    ) -> dict[str, Any]:
        """The tool's structured result (redacted), or ServiceFailure with a sanitized message."""
        sec = self.security
        request_id = request_id or uuid.uuid4().hex
        started = time.monotonic()
        record: dict[str, Any] = {
            "ts": utc_timestamp(), "event": "tool_call", "request_id": request_id, "token_id": caller.token_id,
            "client": caller.address, "transport": transport, "tool": name[:200],
            "arguments": sec.redactor.redact_value(raw_args or {}),
        }
        decision: CallDecision | None = None
        dispatched = False
        try:
            try:
                if sec.limiter is not None:
                    sec.limiter.check_rate(caller.token_id, name)
                spec = self.lookup(name, caller)
                slot = sec.limiter.running(caller.token_id) if sec.limiter is not None else contextlib.nullcontext()
                with slot:
                    args = parse_args(spec, raw_args)
                    decision = sec.access.authorize(spec, args, caller)
                    if decision.destructive and sec.confirm is not None:
                        await sec.confirm(spec, args, caller, decision)
                    if not spec.idempotent_call(args) and sec.audit is not None:
                        await sec.audit.append({**record, "event": "tool_call_started",
                                                "decision": decision.as_record()})
                    dispatched = True
                    with metrics.tool_in_flight(spec.name):
                        result = await self._dispatch(spec, args, caller, progress, request_id)
            except ServiceFailure as exc:
                raise self._clean(exc) from None
            except AuditError:
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
            await self._audit(record, started, decision, failure.info, denied=not dispatched)
            raise
        except AuditError:
            raise ServiceFailure(ErrorCode.INTERNAL, "the audit log could not be written, so the call was not "
                                 "performed; an operator must fix the audit log") from None
        clean = sec.redactor.redact_value(result)
        await self._audit(record, started, decision, None, upid=_upid_of(clean))
        return clean

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

    async def _dispatch(self, spec: ToolSpec, args: BaseModel, caller: Caller, progress: ProgressFn | None,
                        request_id: str) -> dict[str, Any]:
        # Workers see the scope the gateway granted (read-only mode lowers it), never more.
        effective = self.security.access.effective_scope(caller)
        caller = caller if effective is caller.scope else caller.model_copy(update={"scope": effective})
        cluster = self.limits.default_cluster
        if isinstance(args, t.ExecuteCommandArgs):
            args.timeout = min(args.timeout, self.limits.max_command_timeout)
            deadline = time.time() + args.timeout + self.limits.command_grace
        else:
            deadline = time.time() + self.limits.api_timeout
        payload = args.model_dump(mode="json", exclude_none=True)
        result = await self.bus.call(
            spec.kind, spec.op, payload, cluster=cluster, caller=caller, deadline=deadline,
            idempotent=spec.idempotent_call(args), request_id=request_id,
        )
        if isinstance(args, t.VmActionArgs) and args.wait:
            result = await self._wait_for_task(result, args, caller, cluster, progress)
        return _checked(spec, result)

    async def _wait_for_task(
        self, started: dict[str, Any], args: t.VmActionArgs, caller: Caller, cluster: str,
        progress: ProgressFn | None,
    ) -> dict[str, Any]:
        action = t.VmActionResult.model_validate(started)
        began = time.monotonic()
        wait_until = began + args.wait_timeout
        step = 0
        last_line: str | None = None
        while True:
            query = t.TaskStatusArgs(upid=action.upid, node=action.node, log_lines=20)
            raw = await self.bus.call(
                WorkerKind.API, ApiOp.TASK_STATUS, query.model_dump(mode="json", exclude_none=True),
                cluster=cluster, caller=caller, deadline=time.time() + self.limits.api_timeout, idempotent=True,
            )
            task = t.TaskResult.model_validate(raw)
            step += 1
            line = task.log_tail[-1] if task.log_tail else None
            if progress is not None and (task.status == "running" or step == 1 or line != last_line):
                await progress(float(step), None, self.security.redactor.redact_text(
                    f"task {task.status}" + (f": {line}" if line else "")))
            last_line = line
            if task.status == "stopped":
                if progress is not None:
                    await progress(float(step + 1), float(step + 1), f"task finished: {task.exitstatus}")
                action.task = task
                action.waited = True
                metrics.observe_task_wait(cluster, "ok" if task.exitstatus == "OK" else "failed",
                                          time.monotonic() - began)
                return action.model_dump(mode="json")
            if time.monotonic() >= wait_until:
                metrics.observe_task_wait(cluster, "timeout", time.monotonic() - began)
                raise ServiceFailure(
                    ErrorCode.TIMEOUT,
                    f"task {action.upid} still running after {args.wait_timeout} s; it goes on in Proxmox "
                    "(check it with proxmox_api GET /nodes/{node}/tasks/{upid}/status)",
                    details={"upid": action.upid},
                )
            await asyncio.sleep(self.limits.task_poll_interval)


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
