"""Check a response `data` member against a method's `returns` schema, as it travels on the wire.

Stricter than Proxmox's own check on purpose: booleans must be 0/1 integers (Proxmox never sends
JSON true/false), integers must not be floats, and with `strict=True` an object may not carry keys
its schema does not declare.
"""

from __future__ import annotations

import math
from typing import Any

from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.pve_schema.formats import FormatError
from proxmox_mcp_contracts.pve_schema.validate import check_format, compile_perl_pattern, perl_str, schema_for_key


def return_errors(schema: Any, data: Any, *, strict: bool = False, path: str = "data") -> list[str]:
    """Every way `data` departs from `schema`, as `path: problem` lines; [] when it conforms."""
    problems: list[str] = []
    _check(schema, data, path, strict, problems)
    return problems


def _type_ok(type_: str, value: Any) -> bool:
    if type_ == "null":
        return value is None
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if type_ == "boolean":
        return isinstance(value, int) and not isinstance(value, bool) and value in (0, 1)
    if type_ == "array":
        return isinstance(value, list)
    if type_ == "object":
        return isinstance(value, dict)
    return True


def _check(schema: Any, value: Any, path: str, strict: bool, problems: list[str]) -> None:
    if not is_object(schema):
        return
    type_ = schema.get("type")
    if is_array(type_):
        if not any(_type_ok(str(t), value) for t in type_):
            problems.append(f"{path}: expected one of {type_}, got {_describe(value)}")
        return
    if isinstance(type_, str) and not _type_ok(type_, value):
        problems.append(f"{path}: expected {type_}{' (0/1)' if type_ == 'boolean' else ''}, got {_describe(value)}")
        return
    if is_array(value):
        items = schema.get("items")
        for index, element in enumerate(value):
            _check(items, element, f"{path}[{index}]", strict, problems)
        return
    if is_object(value):
        _check_object(schema, value, path, strict, problems)
        return
    if value is None or isinstance(value, bool):
        return
    _check_scalar(schema, value, path, problems)


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str, strict: bool, problems: list[str]) -> None:
    properties: dict[str, Any] = schema.get("properties") or {}
    for key, subschema in properties.items():
        if key.endswith("[n]") or not is_object(subschema):
            continue
        if value.get(key) is None:
            if not subschema.get("optional") and subschema.get("type") != "null":
                problems.append(f"{path}.{key}: missing (not optional)")
            continue
        _check(subschema, value[key], f"{path}.{key}", strict, problems)
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            continue
        subschema = schema_for_key(properties, key)
        if subschema is not None:
            _check(subschema, item, f"{path}.{key}", strict, problems)
        elif isinstance(additional, dict):
            _check(additional, item, f"{path}.{key}", strict, problems)
        elif additional == 0 or (strict and properties and not additional):
            problems.append(f"{path}.{key}: not defined in the schema")


def _check_scalar(schema: dict[str, Any], value: Any, path: str, problems: list[str]) -> None:
    text = perl_str(value)
    enum = schema.get("enum")
    if enum and text not in [perl_str(choice) for choice in enum]:
        problems.append(f"{path}: {text!r} is not one of {enum}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and isinstance(value, str):
        compiled = compile_perl_pattern(pattern)
        if compiled is not None and not compiled.search(value):
            problems.append(f"{path}: {value!r} does not match {pattern!r}")
    if isinstance(value, int | float):
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if isinstance(minimum, int | float) and value < minimum:
            problems.append(f"{path}: {text} is below the minimum {minimum}")
        if isinstance(maximum, int | float) and value > maximum:
            problems.append(f"{path}: {text} is above the maximum {maximum}")
    fmt = schema.get("format")
    if fmt and isinstance(value, str):
        try:
            check_format(fmt, value, path)
        except FormatError as exc:
            detail = "; ".join(f"{k}: {v.strip()}" for k, v in exc.errors.items())
            problems.append(f"{path}: {value!r} has an invalid format - {exc}{' (' + detail + ')' if detail else ''}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"JSON {'true' if value else 'false'}"
    return f"{type(value).__name__} {value!r}"[:80]
