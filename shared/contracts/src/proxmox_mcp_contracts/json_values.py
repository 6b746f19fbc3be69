"""Type guards for decoded JSON (json.loads, TOML, untyped libraries all hand back `Any`).

`isinstance(value, dict)` leaves key and value types unknown to the type checker; these say what JSON
guarantees instead: objects have string keys, values are anything. Same runtime check as isinstance.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeIs

JsonObject = dict[str, Any]
JsonArray = list[Any]


def is_object(value: object) -> TypeIs[JsonObject]:
    """True for a decoded JSON object (a dict)."""
    return isinstance(value, dict)


def is_array(value: object) -> TypeIs[JsonArray]:
    """True for a decoded JSON array (a list)."""
    return isinstance(value, list)
