"""Test control endpoints outside /api2, authenticated with the admin token header.

GET    /_sim/faults   -> {"rules": [...]}
POST   /_sim/faults   {"rules": [{"path", "method", "latency_ms", "error_rate", "status", "message"}]}
                      replaces all rules (including those from --latency/--error-rate)
DELETE /_sim/faults   removes all rules
POST   /_sim/reset    back to the seeded state (tasks cleared; secrets and fault rules kept)
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
    if path == "/_sim/reset" and method == "POST":
        sim.reset()
        return _reply(200, {"reset": True, "guests": len(sim.cluster.guests)})
    return _reply(404, {"error": f"no control endpoint {method} {path}"}, "Not Found")
