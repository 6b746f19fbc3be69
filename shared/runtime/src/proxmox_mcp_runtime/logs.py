"""Structured JSON logging for every service; LOG_LEVEL picks the level."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from proxmox_mcp_runtime.redact import redact_value

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


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
