"""Helpers shared by the endpoint modules."""

from __future__ import annotations

import functools
from typing import Any

from proxmox_mcp_contracts.json_values import is_object
from proxmox_mcp_contracts.pve_schema import method_schema
from proxmox_mcp_contracts.pve_schema.validate import schema_for_key

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.errors import failed
from proxmox_mcp_pve_sim.model import Guest, GuestKind


def kind_label(kind: GuestKind) -> str:
    return "VM" if kind == "qemu" else "CT"


def find_guest(call: Call, kind: GuestKind) -> Guest:
    """The guest the path names, or the 500 a node answers for a missing config file."""
    node, vmid = call["node"], call["vmid"]
    guest = call.sim.cluster.guest(node, vmid, kind)
    if guest is None:
        folder = "qemu-server" if kind == "qemu" else "lxc"
        raise failed(f"Configuration file 'nodes/{node}/{folder}/{vmid}.conf' does not exist")
    return guest


@functools.cache
def _config_properties(kind: GuestKind) -> dict[str, Any]:
    schema = method_schema("GET", f"/nodes/{{node}}/{kind}/{{vmid}}/config") or {}
    returns: dict[str, Any] = schema.get("returns") or {}
    return dict(returns.get("properties") or {})


def typed_config(kind: GuestKind, config: dict[str, str]) -> dict[str, Any]:
    """Config values as a node sends them: numbers for integer/number/boolean keys, strings otherwise."""
    properties = _config_properties(kind)
    result: dict[str, Any] = {}
    for key, value in config.items():
        schema = schema_for_key(properties, key)
        type_ = schema.get("type") if is_object(schema) else None
        result[key] = _typed(type_, value)
    return result


def _typed(type_: Any, value: str) -> Any:
    try:
        if type_ in ("integer", "boolean"):
            return int(value)
        if type_ == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
    except ValueError:
        return value
    return value


def subdirs(*names: str) -> list[dict[str, str]]:
    return [{"subdir": name} for name in names]
