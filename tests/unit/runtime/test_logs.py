"""JSON log lines: they carry the request they belong to (fields bound in a context reach every line, also from
threads), and they pass the redactor."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets

from proxmox_mcp_runtime.logs import JsonFormatter, bind_log_context, log_context
from proxmox_mcp_runtime.redact import REDACTED


def _line(logger: logging.Logger, message: str, **extra: object) -> dict[str, object]:
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None, extra=extra)
    return json.loads(JsonFormatter("test").format(record))


def test_fields_apply_inside_the_context_only() -> None:
    logger = logging.getLogger("test.log_context")
    with log_context(request_id="r1", trace_id="t1", empty=None):
        inside = _line(logger, "inside")
        overridden = _line(logger, "own extra wins", request_id="r2")
    outside = _line(logger, "outside")
    assert inside["request_id"] == "r1" and inside["trace_id"] == "t1" and "empty" not in inside
    assert overridden["request_id"] == "r2"
    assert "request_id" not in outside and "trace_id" not in outside


async def test_a_tasks_binding_reaches_its_threads_and_not_other_tasks() -> None:
    logger = logging.getLogger("test.log_context")

    async def request(request_id: str) -> tuple[dict[str, object], dict[str, object]]:
        bind_log_context(request_id=request_id)
        await asyncio.sleep(0)
        return _line(logger, "in task"), await asyncio.to_thread(_line, logger, "in thread")

    (a_task, a_thread), (b_task, b_thread) = await asyncio.gather(
        asyncio.create_task(request("a")), asyncio.create_task(request("b")))
    assert a_task["request_id"] == a_thread["request_id"] == "a"
    assert b_task["request_id"] == b_thread["request_id"] == "b"
    assert "request_id" not in _line(logger, "after")


def test_json_log_lines_pass_the_redactor() -> None:
    secret = f"pmcp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got %s", (secret,), None)
    record.password = "hunter22"
    line = json.loads(JsonFormatter("test").format(record))
    assert secret not in json.dumps(line) and line["password"] == REDACTED
