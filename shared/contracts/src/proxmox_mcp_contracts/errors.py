"""The closed set of error codes every part of proxmox-mcp speaks, and their HTTP statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    POLICY_DENIED = "policy_denied"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    UPSTREAM_ERROR = "upstream_error"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.POLICY_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UPSTREAM_ERROR: 502,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
}


class ErrorInfo(BaseModel):
    """The error object that travels in worker error replies, REST bodies and MCP structured content."""

    code: ErrorCode
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def as_text(self) -> str:
        """The MCP tool-error text: it always starts with the code."""
        return f"{self.code.value}: {self.message}"


class ServiceFailure(Exception):
    """Raised anywhere in gateway or workers to end a call with a precise, sanitized error."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.info = ErrorInfo(code=code, message=message, retryable=retryable, details=details or {})

    @property
    def code(self) -> ErrorCode:
        return self.info.code

    def __str__(self) -> str:
        return self.info.as_text()
