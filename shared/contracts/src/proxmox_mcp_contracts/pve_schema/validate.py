"""Parameter validation in Proxmox's own dialect, with pve-common's messages.

Mirrors PVE::JSONSchema::check_object/check_prop/check_type so a 400 from here reads like one from
a real node: `{"vmid": "type check ('integer') failed - got 'abc'"}`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any, cast

from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.pve_schema.formats import FormatError, check_named_format

MISSING = "property is missing and it is not optional"
NOT_DEFINED = "property is not defined in schema and the schema does not allow additional properties"

_NUMBER = re.compile(r"[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_INDEXED = re.compile(r"(.*?)(\d+)")


def perl_str(value: Any) -> str:
    """How Perl would interpolate a JSON scalar into a message."""
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g")
    return str(value)


def _perl_ref(value: Any) -> str | None:
    if isinstance(value, bool):
        return "JSON::PP::Boolean"
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        return "HASH"
    return None


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return isinstance(value, int) or math.isfinite(value)
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None


def is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return _INTEGER.fullmatch(perl_str(value)) is not None if isinstance(value, str | float) else False


def add_error(errors: dict[str, str], path: str, message: str) -> None:
    path = path or "_root"
    errors[path] = f"{errors[path]}\\n{message}" if path in errors else message


def _check_type(path: str, type_: Any, value: Any, errors: dict[str, str]) -> bool:
    if not type_:
        return True
    if is_array(type_):
        for alternative in type_:
            if _check_type(path, alternative, value, {}):
                return True
        add_error(errors, path, f"type check ('{'|'.join(map(str, type_))}') failed")
        return False
    if isinstance(type_, dict):
        inner: dict[str, str] = {}
        check_prop(value, type_, path, inner)
        if inner:
            add_error(errors, path, "type check failed")
            return False
        return True
    if type_ == "any":
        return True
    if type_ == "null":
        if value is not None:
            add_error(errors, path, f"type check ('{type_}') failed - value is not null")
            return False
        return True
    if type_ == "array":
        if not isinstance(value, list):
            add_error(errors, path, f"type check ('{type_}') failed")
            return False
        return True
    if type_ == "object":
        if not isinstance(value, dict):
            add_error(errors, path, f"type check ('{type_}') failed")
            return False
        return True
    ref = _perl_ref(value)
    if ref is not None:
        if type_ == "boolean" and isinstance(value, bool):
            return True
        add_error(errors, path, f"type check ('{type_}') failed - got {ref}")
        return False
    text = perl_str(value)
    if type_ == "boolean" and text not in ("0", "1"):
        add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
        return False
    if type_ == "integer" and not is_integer(value):
        add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
        return False
    if type_ == "number" and not is_number(value):
        add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
        return False
    return True


@functools.lru_cache(maxsize=512)
def compile_perl_pattern(pattern: str) -> re.Pattern[str] | None:
    """Translate the Perl-isms the schema uses; None when Python cannot express the pattern."""
    translated = pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:").replace("\\z", "\\Z")
    try:
        return re.compile(f"^{translated}$")
    except re.error:
        return None


def check_prop(value: Any, schema: Any, path: str, errors: dict[str, str], instance_type: str | None = None) -> None:
    if not is_object(schema):
        add_error(errors, path, "Invalid schema definition.")
        return
    optional_for_type = False
    if schema.get("oneOf"):
        if schema.get("type-property"):
            optional_for_type = True
            for inner in schema["oneOf"]:
                if not instance_type:
                    break
                if instance_type in (inner.get("instance-types") or []):
                    optional_for_type = bool(inner.get("optional"))
                    check_prop(value, inner, path, errors)
        elif value is not None and not any(_passes(value, inner, path) for inner in schema["oneOf"]):
            add_error(errors, path, "value does not match any of the alternatives")
    if value is None:
        if schema.get("type") == "null":
            return
        if not (schema.get("optional") or schema.get("alias") or schema.get("group") or optional_for_type):
            add_error(errors, path, MISSING)
        return
    if not _check_type(path, schema.get("type"), value, errors):
        return
    if is_array(value):
        items = schema.get("items")
        if is_object(items):
            for index, element in enumerate(value):
                check_prop(element, items, f"{path}[{index}]", errors)
        return
    if is_object(value):
        if schema.get("properties") is not None or schema.get("additionalProperties"):
            check_object(path, schema.get("properties") or {}, value, schema.get("additionalProperties"), errors)
        return
    if isinstance(value, bool):
        return
    _check_scalar(perl_str(value), value, schema, path, errors)


def _passes(value: Any, schema: Any, path: str) -> bool:
    inner: dict[str, str] = {}
    check_prop(value, schema, path, inner)
    return not inner


def _check_scalar(text: str, value: Any, schema: dict[str, Any], path: str, errors: dict[str, str]) -> None:
    fmt = schema.get("format")
    if fmt:
        try:
            check_format(fmt, text, path)
        except FormatError as exc:
            detail = "".join(f"{key}: {reason}\n" for key, reason in exc.errors.items())
            add_error(errors, path, f"invalid format - {exc}\n{detail}")
            return
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = compile_perl_pattern(pattern)
        if compiled is not None and not compiled.search(text):
            add_error(errors, path, "value does not match the regex pattern")
            return
    max_length = schema.get("maxLength")
    if max_length is not None and len(text) > max_length:
        add_error(errors, path, f"value may only be {perl_str(max_length)} characters long")
        return
    min_length = schema.get("minLength")
    if min_length is not None and len(text) < min_length:
        add_error(errors, path, f"value must be at least {perl_str(min_length)} characters long")
        return
    if is_number(value):
        number = float(text)
        maximum = schema.get("maximum")
        if is_number(maximum) and number > float(perl_str(maximum)):
            add_error(errors, path, f"value must have a maximum value of {perl_str(maximum)}")
            return
        minimum = schema.get("minimum")
        if is_number(minimum) and number < float(perl_str(minimum)):
            add_error(errors, path, f"value must have a minimum value of {perl_str(minimum)}")
            return
    enum = schema.get("enum")
    if enum and text not in [perl_str(choice) for choice in enum]:
        add_error(
            errors, path, f"value '{text}' does not have a value in the enumeration '{', '.join(map(str, enum))}'"
        )


def schema_for_key(properties: Mapping[str, Any], key: str) -> Any:
    """The definition for `key`, mapping indexed names (`net0`) onto their `net[n]` entry."""
    direct = properties.get(key)
    if direct is not None:
        return direct
    match = _INDEXED.fullmatch(key)
    if match and match.group(1):
        return properties.get(f"{match.group(1)}[n]")
    return None


def check_object(path: str, properties: Any, value: Any, additional: Any, errors: dict[str, str]) -> None:
    if not is_object(properties):
        add_error(errors, path, "Invalid schema definition.")
        return
    if not is_object(value):
        add_error(errors, path, "an object is required")
        return
    for key, subschema in properties.items():
        if key.endswith("[n]"):
            continue
        instance_type = None
        if is_object(subschema) and subschema.get("type-property"):
            instance_type = value.get(subschema["type-property"])
        check_prop(value.get(key), subschema, f"{path}.{key}" if path else key, errors, instance_type)
    for key, item in value.items():
        new_path = f"{path}.{key}" if path else key
        subschema = schema_for_key(properties, key)
        if is_object(subschema):
            if key not in properties:
                check_prop(item, subschema, new_path, errors)
            requires = subschema.get("requires")
            if isinstance(requires, str) and value.get(requires) is None:
                add_error(
                    errors,
                    f"{path}.{requires}" if path else requires,
                    f"missing property - '{new_path}' requires this property",
                )
            elif isinstance(requires, dict):
                check_prop(value, requires, path, errors)
            continue
        if additional is not None and not additional:
            add_error(errors, new_path, NOT_DEFINED)
            continue
        if isinstance(additional, dict):
            check_prop(item, additional, new_path, errors)


def check_parameters(parameters: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, str]:
    """Validate call parameters against a method's `parameters` schema; {} when they are fine."""
    errors: dict[str, str] = {}
    check_object(
        "", dict(parameters.get("properties") or {}), dict(values), parameters.get("additionalProperties"), errors
    )
    return errors


def coerce_parameters(parameters: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Typed copies of already validated values: ints, 0/1 for booleans, floats, lists, strings."""
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    result: dict[str, Any] = {}
    for key, value in values.items():
        schema = schema_for_key(properties, key)
        type_ = schema.get("type") if is_object(schema) else None
        result[key] = _coerce(type_, value)
    return result


def _coerce(type_: Any, value: Any) -> Any:
    if value is None or is_array(value) or is_object(value):
        return value
    if type_ == "boolean":
        return 1 if value is True or perl_str(value) == "1" else 0
    if type_ == "integer":
        return int(perl_str(value))
    if type_ == "number":
        return float(perl_str(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    return perl_str(value)


def check_format(fmt: Any, value: str, path: str) -> None:
    """Raise FormatError when `value` does not satisfy `fmt` (a name or a property-string definition)."""
    if isinstance(fmt, dict):
        parse_property_string(cast("dict[str, Any]", fmt), value, path)
    elif isinstance(fmt, str):
        check_named_format(fmt, value)


def parse_property_string(fmt: dict[str, Any], data: str, path: str = "") -> dict[str, Any]:
    """Parse `key=value,...` against a property-string format, as PVE::JSONSchema::parse_property_string."""
    result: dict[str, Any] = {}
    default_key: str | None = None
    for part in data.split(","):
        if not part.strip():
            continue
        if "=" in part and not part.startswith("="):
            key, value = part.split("=", 1)
            if value == "":
                raise FormatError("missing key in comma-separated list property")
            if key in result:
                raise FormatError(f"duplicate key in comma-separated list property: {key}")
            schema = fmt.get(key)
            if is_object(schema) and "alias" in schema:
                key_alias = schema.get("keyAlias")
                if key_alias:
                    if key_alias in result:
                        raise FormatError(f"key alias '{key_alias}' is already defined")
                    result[key_alias] = key
                key = schema["alias"]
                schema = fmt.get(key)
            if not is_object(schema):
                raise FormatError(f"invalid key in comma-separated list property: {key}")
            if schema.get("type") == "boolean":
                value = _parse_boolean(value)
            result[key] = value
        elif "=" not in part:
            if default_key is not None:
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            default_key = next((k for k, s in fmt.items() if is_object(s) and s.get("default_key")), None)
            if default_key is None:
                raise FormatError("value without key, but schema does not define a default key")
            if default_key in result:
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            result[default_key] = part
        else:
            raise FormatError("missing key in comma-separated list property")
    errors: dict[str, str] = {}
    check_object(path, fmt, result, 0, errors)
    if errors:
        raise FormatError("format error", errors)
    return result


def _parse_boolean(value: str) -> str:
    lowered = value.lower()
    if lowered in ("1", "on", "yes", "true"):
        return "1"
    if lowered in ("0", "off", "no", "false"):
        return "0"
    return value
