"""Pydantic validation errors in one wording everywhere we show them (tool arguments, request envelopes, the
cluster config, settings): `field: why` for each problem, never the rejected value (it may be a secret or the
caller's hostile input)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_PREFIXES = ("Value error, ", "Assertion failed, ")
"""What pydantic puts before a validator's own message."""


def error_location(error: ErrorDetails, rename_first: Callable[[str], str] | None = None) -> str:
    """The dotted path of the bad field ("" for the whole input); rename_first maps its first part (a settings
    field to its environment variable)."""
    parts = [str(part) for part in error["loc"]]
    if parts and rename_first is not None:
        parts[0] = rename_first(parts[0])
    return ".".join(parts)


def error_reason(error: ErrorDetails) -> str:
    message = str(error["msg"])
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def describe_validation_error(
    exc: ValidationError, *, whole: str | None = "arguments", rename_first: Callable[[str], str] | None = None
) -> str:
    """`field: why` for every problem, joined by "; ". A problem with the whole input is named `whole` (or is
    its reason alone when whole is None)."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        where = error_location(error, rename_first) or whole
        reason = error_reason(error)
        problems.append(f"{where}: {reason}" if where else reason)
    return "; ".join(problems)
