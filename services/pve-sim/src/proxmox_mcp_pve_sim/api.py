"""The route table and the one dispatcher both faces (HTTPS and pvesh) go through.

Order of checks, as on a node: node exists (proxy) -> permissions -> parameter verification
against the schema subset -> handler.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxmox_mcp_contracts.pve_schema import check_parameters, coerce_parameters, match_path, method_schema

from proxmox_mcp_pve_sim.access import Caller
from proxmox_mcp_pve_sim.errors import ApiError, failed, not_implemented, param_error

if TYPE_CHECKING:
    from proxmox_mcp_pve_sim.sim import Sim

METHODS = ("GET", "POST", "PUT", "DELETE")
log = logging.getLogger("pve-sim.api")


@dataclass
class Result:
    """What a call answers: data on 200, or status/message/errors."""

    status: int = 200
    data: Any = None
    message: str | None = None
    errors: dict[str, str] | None = None
    total: int | None = None


@dataclass
class Call:
    sim: Sim
    caller: Caller
    params: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.params.get(key)
        return default if value is None else value


Handler = Callable[[Call], Any]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        key = (method, template)
        if key in ROUTES:
            raise RuntimeError(f"route registered twice: {method} {template}")
        if method_schema(method, template) is None:
            raise RuntimeError(f"route not in the schema subset: {method} {template}")
        ROUTES[key] = handler
        return handler

    return register


def served_routes() -> list[tuple[str, str]]:
    """Every (method, path template) the simulator answers."""
    _load_endpoints()
    return sorted(ROUTES, key=lambda key: (key[1], key[0]))


def _load_endpoints() -> None:
    from proxmox_mcp_pve_sim import endpoints  # noqa: F401 - registers the routes


def _wrap_arrays(parameters: dict[str, Any], values: dict[str, Any]) -> None:
    """A single form value for an array parameter (`command=uptime`) is a one-element array."""
    properties = parameters.get("properties") or {}
    for key, value in values.items():
        schema = properties.get(key)
        if isinstance(schema, dict) and schema.get("type") == "array" and not isinstance(value, list):
            values[key] = [value]


def unknown_node(node: str) -> ApiError:
    return failed(
        f"hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
    )


async def dispatch(sim: Sim, caller: Caller, method: str, path: str, params: dict[str, Any]) -> Result:
    """Answer one API call; never raises for bad input (4xx/5xx Results instead)."""
    _load_endpoints()
    method = method.upper()
    delay, injected = sim.faults.plan(method, path)
    if delay:
        await asyncio.sleep(delay)
    if injected is not None:
        return Result(injected.status, None, injected.message)
    try:
        data = await _answer(sim, caller, method, path, params)
    except ApiError as exc:
        return Result(exc.status, None, exc.message, exc.errors)
    except Exception:  # a simulator bug answers like a node's internal error instead of dropping the connection
        log.exception("internal error in %s %s", method, path)
        return Result(500, None, "internal error")
    if isinstance(data, Result):
        return data
    return Result(200, data)


async def _answer(sim: Sim, caller: Caller, method: str, path: str, params: dict[str, Any]) -> Any:
    matched = match_path(path) if method in METHODS else None
    if matched is None or (method, matched[0]) not in ROUTES:
        raise not_implemented(method, path)
    template, path_params = matched
    schema = method_schema(method, template) or {}
    node = path_params.get("node")
    if node is not None and node not in sim.cluster.nodes:
        raise unknown_node(node)
    values = {**params, **path_params}
    sim.access.check_permissions(caller, schema.get("permissions"), values)
    parameters = schema.get("parameters") or {}
    _wrap_arrays(parameters, values)
    errors = check_parameters(parameters, values)
    if errors:
        raise param_error(errors)
    result = ROUTES[(method, template)](Call(sim, caller, coerce_parameters(parameters, values)))
    if inspect.isawaitable(result):
        result = await result
    return result
