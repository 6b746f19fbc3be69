"""Test control endpoints outside /api2, authenticated with the admin token header.

GET    /_sim/faults   -> {"rules": [...]}
POST   /_sim/faults   {"rules": [{"path", "method", "latency_ms", "error_rate", "status", "message"}]}
                      replaces all rules (including those from --latency/--error-rate)
DELETE /_sim/faults   removes all rules
GET    /_sim/requests -> {"requests": {"GET /cluster/resources": 12, ...}}: authenticated API requests served since
                      start, by method and path (benchmarks count upstream requests with it)
POST   /_sim/reset    back to the seeded state (tasks cleared; secrets and fault rules kept)
GET    /_sim/nodes    -> {"nodes": {"pve1": {"online": true, "reachable": true, "proxy_delay_ms": 0}, ...}}
POST   /_sim/nodes/NODE  {"online": false, "proxy_delay_ms": 0}: take a node off the cluster (shown offline, its
                      guests' status unknown; requests proxied to it fail with 595 "No route to host", or hang for
                      proxy_delay_ms and then fail with "Connection timed out"); {"online": true} brings it back.
                      {"online": true, "reachable": false, ...}: still counted by the cluster, but requests to it
                      fail or hang (before corosync notices, or a hung API on that node).
                      With every node offline the API drops each request, like a dead host.
POST   /_sim/storage/STORAGE  {"full": true}: no space left on that storage (on every node), so backups fail
"""

from __future__ import annotations

import json
from typing import Any

from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_pve_sim.faults import FaultRule, FaultRuleError
from proxmox_mcp_pve_sim.http_response import Response
from proxmox_mcp_pve_sim.sim import Sim


def _reply(status: int, payload: dict[str, Any], reason: str | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), reason, content_type="application/json")


async def handle_control(sim: Sim, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
    if not sim.access.is_admin_token_header(headers.get("authorization")):
        return _reply(
            401, {"error": "the admin API token (Authorization: PVEAPIToken=...) is required"}, "admin token required"
        )
    if path == "/_sim/faults":
        if method == "GET":
            return _reply(200, {"rules": [rule.as_dict() for rule in sim.faults.rules]})
        if method == "DELETE":
            sim.faults.clear()
            return _reply(200, {"rules": []})
        if method in ("POST", "PUT"):
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                return _reply(400, {"error": 'body must be JSON: {"rules": [...]}'}, "invalid JSON")
            if not is_object(payload) or not is_array(payload.get("rules")):
                return _reply(400, {"error": 'body must be a JSON object with a "rules" list'}, "missing rules")
            try:
                rules = [FaultRule.from_dict(raw) for raw in payload["rules"]]
            except FaultRuleError as exc:
                return _reply(400, {"error": str(exc)}, "invalid fault rule")
            sim.faults.replace(rules)
            return _reply(200, {"rules": [rule.as_dict() for rule in rules]})
    if path == "/_sim/requests" and method == "GET":
        return _reply(200, {"requests": dict(sim.requests)})
    if path == "/_sim/nodes" and method == "GET":
        return _reply(200, {"nodes": _node_states(sim)})
    if path.startswith("/_sim/nodes/") and method in ("POST", "PUT"):
        return _set_node(sim, path.removeprefix("/_sim/nodes/"), body)
    if path.startswith("/_sim/storage/") and method in ("POST", "PUT"):
        return _set_storage(sim, path.removeprefix("/_sim/storage/"), body)
    if path == "/_sim/reset" and method == "POST":
        sim.reset()
        return _reply(200, {"reset": True, "guests": len(sim.cluster.guests)})
    return _reply(404, {"error": f"no control endpoint {method} {path}"}, "Not Found")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None
    return payload if is_object(payload) else None


def _node_states(sim: Sim) -> dict[str, dict[str, Any]]:
    return {
        node.name: {"online": node.online, "reachable": node.reachable,
                    "proxy_delay_ms": round(node.proxy_delay * 1000)}
        for node in sim.cluster.nodes.values()
    }


def _set_node(sim: Sim, name: str, body: bytes) -> Response:
    if name not in sim.cluster.nodes:
        return _reply(404, {"error": f"no node {name!r}; nodes: {', '.join(sim.cluster.nodes)}"}, "no such node")
    payload = _json_object(body)
    if (payload is None or set(payload) - {"online", "reachable", "proxy_delay_ms"}
            or not isinstance(payload.get("online"), bool) or not isinstance(payload.get("reachable", True), bool)):
        return _reply(400, {"error": 'body must be {"online": true|false, "reachable": true|false, '
                                     '"proxy_delay_ms": N}'}, "invalid body")
    delay = payload.get("proxy_delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 600_000:
        return _reply(400, {"error": "proxy_delay_ms must be a number from 0 to 600000"}, "invalid body")
    sim.set_node_online(name, payload["online"], reachable=payload.get("reachable"), proxy_delay=delay / 1000)
    return _reply(200, {"nodes": _node_states(sim)})


def _set_storage(sim: Sim, name: str, body: bytes) -> Response:
    storages = [n.storages[name] for n in sim.cluster.nodes.values() if name in n.storages]
    if not storages:
        return _reply(404, {"error": f"no storage {name!r}"}, "no such storage")
    payload = _json_object(body)
    if payload is None or set(payload) != {"full"} or not isinstance(payload["full"], bool):
        return _reply(400, {"error": 'body must be {"full": true|false}'}, "invalid body")
    for storage in storages:
        storage.full = payload["full"]
    return _reply(200, {"storage": name, "full": payload["full"]})
