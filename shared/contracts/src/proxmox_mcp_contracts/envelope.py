"""Request and reply envelopes between the gateway and the workers."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure


class Scope(StrEnum):
    """Caller scope levels; each includes the ones below it."""

    READ = "read"
    OPERATE = "operate"
    EXEC = "exec"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _SCOPE_RANK[self]

    def includes(self, other: Scope) -> bool:
        return self.rank >= other.rank


_SCOPE_RANK = {Scope.READ: 0, Scope.OPERATE: 1, Scope.EXEC: 2, Scope.ADMIN: 3}


class Caller(BaseModel):
    """Who asked: the gateway vouches for this identity; workers use it for policy and audit."""

    token_id: str
    scope: Scope
    command_profile: str = "readonly"
    address: str | None = None


class RequestEnvelope(BaseModel):
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    op: str
    cluster: str = "default"
    args: dict[str, Any] = Field(default_factory=dict)
    deadline: float = Field(description="Absolute deadline, seconds since the epoch (time.time()).")
    caller: Caller
    trace: dict[str, str] = Field(default_factory=dict)
    heartbeat_subject: str | None = Field(
        default=None, description="Where the worker publishes a heartbeat while the call runs (liveness)."
    )
    heartbeat_interval: float = Field(default=1.0, gt=0, le=60)

    def remaining(self, now: float | None = None) -> float:
        return self.deadline - (time.time() if now is None else now)

    def require_time_left(self, now: float | None = None) -> float:
        left = self.remaining(now)
        if left <= 0:
            raise ServiceFailure(ErrorCode.TIMEOUT, "the call's deadline passed before the worker started it")
        return left


class ReplyEnvelope(BaseModel):
    request_id: str
    result: dict[str, Any]


def encode_error(info: ErrorInfo) -> bytes:
    return info.model_dump_json().encode()


def decode_error(code_header: str | None, description: str | None, body: bytes) -> ErrorInfo:
    """Rebuild the error object of a micro error reply; tolerate foreign or truncated bodies."""
    try:
        return ErrorInfo.model_validate_json(body)
    except ValueError:
        try:
            code = ErrorCode(code_header or "")
        except ValueError:
            code = ErrorCode.INTERNAL
        return ErrorInfo(code=code, message=description or "worker returned an error without details")
