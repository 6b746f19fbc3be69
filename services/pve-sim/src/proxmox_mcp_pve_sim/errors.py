"""The failures an API call can end in, shaped like pve-http-server's answers."""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than 200: status, message (its first line becomes the reason phrase), errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(errors: dict[str, str]) -> ApiError:
    return ApiError(400, "Parameter verification failed.", errors)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, f"Permission check failed ({detail})")


def failed(message: str) -> ApiError:
    return ApiError(500, message)


def not_implemented(method: str, path: str) -> ApiError:
    return ApiError(501, f"Method '{method} {path}' not implemented")


class TaskFailed(Exception):
    """A worker task ends with this message as its exitstatus."""
