"""Reading Proxmox's loosely typed answers: numbers may come as strings, booleans as 0/1 or strings."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def seg(value: object) -> str:
    """One path segment: anything that could start a new segment or a query is percent-encoded."""
    return quote(str(value), safe=":@!=,+-_.~")


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def flag(value: Any) -> bool:
    return value in (1, "1", True, "true")


def as_bool(value: Any) -> bool | None:
    """0/1, true/false as Proxmox sends them; None when absent."""
    return None if value is None else flag(value)
