"""Structured JSON logging for every service; LOG_LEVEL picks the level."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Generator, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from proxmox_mcp_runtime.redact import redact_value

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("pmcp_log_context", default=MappingProxyType({}))


def bind_log_context(**fields: str | None) -> Token[Mapping[str, str]]:
    """Fields (request_id, trace_id, ...) that every log line written from now on in this context carries, also
    from threads started with asyncio.to_thread. A task's context ends with the task; elsewhere use log_context."""
    return _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v}})


@contextlib.contextmanager
def log_context(**fields: str | None) -> Generator[None, None, None]:
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_CONTEXT.get())
        entry.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}
        )
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
        # Every line passes the redactor (proxmox_mcp_runtime.redact): no secret reaches a log, whoever logged it.
        return json.dumps(redact_value(entry), default=lambda value: redact_value(str(value)))


def configure_logging(service: str, level: str | None = None) -> None:
    """JSON lines on stderr. Exceptions log their type only: tracebacks can carry secrets and paths."""
    chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen if chosen in logging.getLevelNamesMapping() else "INFO")
    for noisy in ("paramiko", "asyncssh", "urllib3", "httpx", "httpcore", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
