"""The one dispatcher both faces (HTTPS and pvesh) go through.

Order of checks, as on a node: node exists (proxy) -> permissions -> parameter verification
against the schema subset -> handler.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, cast

from proxmox_mcp_contracts.pve_schema import check_parameters, coerce_parameters, match_path, method_schema

from proxmox_mcp_pve_sim.access import Caller
from proxmox_mcp_pve_sim.api import Call, Result
from proxmox_mcp_pve_sim.errors import ApiError, failed, not_implemented, param_error
from proxmox_mcp_pve_sim.routes import ROUTES
from proxmox_mcp_pve_sim.sim import Sim

METHODS = ("GET", "POST", "PUT", "DELETE")
log = logging.getLogger("pve-sim.api")


def _wrap_arrays(parameters: dict[str, Any], values: dict[str, Any]) -> None:
    """A single form value for an array parameter (`command=uptime`) is a one-element array."""
    properties: dict[str, Any] = parameters.get("properties") or {}
    for key, value in values.items():
        schema: Any = properties.get(key)
        is_array = isinstance(schema, dict) and cast("dict[str, Any]", schema).get("type") == "array"
        if is_array and not isinstance(value, list):
            values[key] = [value]


def unknown_node(node: str) -> ApiError:
    return failed(
        f"hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
    )


async def _unreachable(delay: float) -> None:
    """What pveproxy answers when it cannot forward a request to an offline node (AnyEvent::HTTP's 595)."""
    if delay > 0:
        await asyncio.sleep(delay)
        raise ApiError(595, "Connection timed out")
    raise ApiError(595, "No route to host")


async def dispatch(sim: Sim, caller: Caller, method: str, path: str, params: dict[str, Any]) -> Result:
    """Answer one API call; never raises for bad input (4xx/5xx Results instead)."""
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
    schema: dict[str, Any] = method_schema(method, template) or {}
    node = path_params.get("node")
    if node is not None and node not in sim.cluster.nodes:
        raise unknown_node(node)
    if node is not None and schema.get("proxyto") == "node" and not sim.cluster.nodes[node].answers:
        await _unreachable(sim.cluster.nodes[node].proxy_delay)
    values = {**params, **path_params}
    sim.access.check_permissions(caller, schema.get("permissions"), values)
    parameters: dict[str, Any] = schema.get("parameters") or {}
    _wrap_arrays(parameters, values)
    errors = check_parameters(parameters, values)
    if errors:
        raise param_error(errors)
    call = Call(sim, caller, coerce_parameters(parameters, values), dispatch)
    result = ROUTES[(method, template)](call)
    if inspect.isawaitable(result):
        result = await result
    return result
