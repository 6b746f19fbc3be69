"""One tool call as every front end answers it (MCP over HTTP or stdio, REST): the executor's structured result
with its text rendering, or the error, each written in the front end's own form; never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure

from proxmox_mcp_gateway.catalog import TOOLS_BY_NAME
from proxmox_mcp_gateway.confirm import ConfirmationPending
from proxmox_mcp_gateway.dispatch import TaskTicket

log = logging.getLogger(__name__)

ReplyT = TypeVar("ReplyT")

GATEWAY_FAILURE = ErrorInfo(code=ErrorCode.INTERNAL, message="the gateway failed on this call")
"""What the client learns of a failure the executor did not turn into a ServiceFailure itself."""


@dataclass(frozen=True)
class ReplyForm(Generic[ReplyT]):
    """How a front end writes the answer to a tool call."""

    result: Callable[[dict[str, Any], str], ReplyT]
    """The structured result and its text rendering."""
    error: Callable[[ErrorInfo], ReplyT]
    pending: Callable[[str], ReplyT] | None = None
    """The question of a confirmation asked through the protocol (MCP's input_required); None: the front end
    cannot ask, so the executor never raises ConfirmationPending for it."""
    task: Callable[[TaskTicket], ReplyT] | None = None
    """The task a long call became (MCP's tasks extension); None: the front end never asks for tasks."""


async def reply_to_call(name: str, call: Awaitable[dict[str, Any] | TaskTicket], form: ReplyForm[ReplyT]) -> ReplyT:
    """Await the executor's call of tool `name` and write what came of it in `form`."""
    try:
        result = await call
    except ConfirmationPending as pending:
        if form.pending is None:
            return _unexpected(name, pending, form)
        return form.pending(pending.message)
    except ServiceFailure as exc:
        return form.error(exc.info)
    except Exception as exc:
        return _unexpected(name, exc, form)
    if isinstance(result, TaskTicket):
        if form.task is None:
            return _unexpected(name, TypeError("a task for a front end without tasks"), form)
        return form.task(result)
    return form.result(result, TOOLS_BY_NAME[name].render(result))


def _unexpected(name: str, exc: Exception, form: ReplyForm[ReplyT]) -> ReplyT:
    log.error("tool call failed", extra={"tool": name, "error_type": type(exc).__name__})
    return form.error(GATEWAY_FAILURE)
