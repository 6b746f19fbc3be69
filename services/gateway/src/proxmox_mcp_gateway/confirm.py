"""Confirmation of destructive calls (CallSecurity.confirm): ask the user through the client when it can, else
require confirm=true; every outcome is written into the call's decision, so the audit log shows it.

The front end (MCP over HTTP or stdio) binds a ConfirmationChannel for the duration of one call; REST and
clients without elicitation have none. The 2026 era cannot ask mid-call: its channel raises ConfirmationPending,
the front end answers `input_required`, and the retried call carries the answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import anyio
from proxmox_mcp_contracts.envelope import Caller
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.redact import DEFAULT_REDACTOR, Redactor
from pydantic import BaseModel

from proxmox_mcp_gateway.access import CallDecision
from proxmox_mcp_gateway.spec import ToolSpec
from proxmox_mcp_gateway.tool_args import GATEWAY_ONLY_FIELDS


class Answer(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    CANCEL = "cancel"


class ConfirmationPending(Exception):
    """The question goes to the client as an `input_required` result; the call is retried with the answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfirmationChannel(Protocol):
    kind: str
    """How the answer travels: elicitation (legacy era) or input_required (2026 era)."""

    async def ask(self, message: str) -> Answer:
        """The user's answer; ConfirmationPending when it comes on a retry; any other exception: could not ask."""
        ...


_channel: ContextVar[ConfirmationChannel | None] = ContextVar("pmcp_confirmation_channel", default=None)


@contextlib.contextmanager
def bound_channel(channel: ConfirmationChannel | None) -> Generator[None, None, None]:
    token = _channel.set(channel)
    try:
        yield
    finally:
        _channel.reset(token)


def refusal(message: str, reason: str) -> ServiceFailure:
    return ServiceFailure(ErrorCode.POLICY_DENIED, message, details={"reason": reason})


@dataclass
class ConfirmPolicy:
    """CallSecurity.confirm: runs for every call whose decision says destructive."""

    enabled: bool = True
    timeout: float = 120.0
    """Seconds the user has to answer an elicitation."""
    redactor: Redactor = field(default=DEFAULT_REDACTOR)

    async def __call__(self, spec: ToolSpec, args: BaseModel, caller: Caller, decision: CallDecision) -> None:
        if not self.enabled:
            decision.confirmation = "disabled"
            return
        question = self.question(spec, args, decision)
        channel = _channel.get()
        if channel is not None:
            try:
                with anyio.fail_after(self.timeout):
                    answer = await channel.ask(question)
            except ConfirmationPending:
                raise
            except TimeoutError:
                decision.confirmation = "timeout"
                raise refusal(f"{spec.name} was not run: nobody confirmed it within {self.timeout:g} s",
                              "confirmation_timeout") from None
            except Exception:  # the client could not ask after all: fall back to the argument
                decision.confirmation = "failed"
            else:
                if answer is Answer.ACCEPT:
                    decision.confirmation = channel.kind
                    return
                decision.confirmation = "declined" if answer is Answer.DECLINE else "cancelled"
                raise refusal(f"{spec.name} was not run: the user {decision.confirmation} the confirmation",
                              f"confirmation_{decision.confirmation}")
        if getattr(args, "confirm", False):
            decision.confirmation = "argument" if decision.confirmation is None else "argument_after_failure"
            return
        if decision.confirmation is None:
            decision.confirmation = "missing"
        raise refusal(
            f"{spec.name} is destructive and needs confirmation: this client cannot ask its user (no MCP "
            "elicitation), so ask the user and, once they agree, repeat the call with confirm=true",
            "confirmation_required",
        )

    def question(self, spec: ToolSpec, args: BaseModel, decision: CallDecision) -> str:
        shown: dict[str, Any] = args.model_dump(mode="json", exclude_none=True, exclude=set(GATEWAY_ONLY_FIELDS),
                                                exclude_defaults=True)
        if decision.argv:
            shown["argv"] = decision.argv
        cluster = getattr(args, "cluster", None)
        where = f" on cluster {cluster}" if cluster else ""
        text = json.dumps(self.redactor.redact_value(shown), sort_keys=True)[:1000]
        return f"Allow the destructive call {spec.name}{where}? {spec.title}: {text}"
