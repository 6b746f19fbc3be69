"""The simulator against the real Proxmox schema in ../shared/pve-api (issue 3, "Done when 1")."""

from __future__ import annotations

import itertools
import json
import re
import time
from functools import cache
from typing import Any

import pytest
from proxmox_mcp_contracts.pve_schema import method_schema, return_errors
from proxmox_mcp_pve_sim.routes import served_routes

from tests.integration.sim.conftest import Api
from tests.support.procs import SHARED_DIR
from tests.support.sim import SimInfo

FULL_SCHEMA = SHARED_DIR / "pve-api" / "pve-api-schema.json"

# The paths issue 3 names, with the methods Proxmox has for them.
LISTED = [
    ("GET", "/version"),
    ("POST", "/access/ticket"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/status"),
    ("GET", "/cluster/tasks"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/network"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("GET", "/nodes/{node}/tasks"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    *itertools.chain.from_iterable(
        [
            ("GET", f"/nodes/{{node}}/{kind}"),
            ("POST", f"/nodes/{{node}}/{kind}"),
            ("DELETE", f"/nodes/{{node}}/{kind}/{{vmid}}"),
            ("GET", f"/nodes/{{node}}/{kind}/{{vmid}}/config"),
            ("GET", f"/nodes/{{node}}/{kind}/{{vmid}}/status/current"),
            ("GET", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot"),
            ("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot"),
            ("DELETE", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot/{{snapname}}"),
            ("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot/{{snapname}}/rollback"),
        ]
        for kind in ("qemu", "lxc")
    ),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
    *(
        ("POST", f"/nodes/{{node}}/qemu/{{vmid}}/status/{a}")
        for a in ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")
    ),
    *(
        ("POST", f"/nodes/{{node}}/lxc/{{vmid}}/status/{a}")
        for a in ("start", "stop", "shutdown", "reboot", "suspend", "resume")
    ),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status"),
]


@cache
def full_schema() -> dict[str, dict[str, Any]]:
    if not FULL_SCHEMA.is_file():
        pytest.fail(f"the full Proxmox schema is expected at {FULL_SCHEMA} (../shared beside the repository)")
    paths: dict[str, dict[str, Any]] = {}
    stack = list(json.loads(FULL_SCHEMA.read_text()))
    while stack:
        node = stack.pop()
        paths[node["path"]] = node.get("info") or {}
        stack.extend(node.get("children") or [])
    return paths


def full_method(method: str, template: str) -> dict[str, Any]:
    return full_schema()[template][method]


def test_every_served_path_and_method_exists_in_the_full_schema() -> None:
    missing = [(m, t) for m, t in served_routes() if m not in full_schema().get(t, {})]
    assert missing == []


def test_the_simulator_serves_every_path_the_issue_lists() -> None:
    served = set(served_routes())
    assert [route for route in LISTED if route not in served] == []


def test_accepted_parameter_names_are_the_full_schemas() -> None:
    for method, template in served_routes():
        accepted = set((method_schema(method, template) or {})["parameters"].get("properties") or {})
        declared = set(full_method(method, template)["parameters"].get("properties") or {})
        assert accepted <= declared, (method, template, accepted - declared)


def _wait_task(api: Api, node: str, upid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = api.get(f"/nodes/{node}/tasks/{upid}/status")
        if status["status"] == "stopped":
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {upid} did not finish")


class World:
    """Real names from the running simulator, to fill path templates."""

    def __init__(self, api: Api) -> None:
        self.nodes = [n["node"] for n in api.get("/nodes")]
        resources = api.get("/cluster/resources", type="vm")
        self.guests = {(g["node"], g["type"]): [] for g in resources}
        for guest in resources:
            self.guests[(guest["node"], guest["type"])].append(guest["vmid"])
        self.storages = {n: [s["storage"] for s in api.get(f"/nodes/{n}/storage")] for n in self.nodes}
        self.ifaces = {n: [i["iface"] for i in api.get(f"/nodes/{n}/network")] for n in self.nodes}
        self.upids: dict[str, list[str]] = {}
        self.snapshots: dict[tuple[str, int], list[str]] = {}
        self.agent_pid: dict[int, int] = {}
        self.backup_jobs = [job["id"] for job in api.get("/cluster/backup")]

    def values(self, name: str, bound: dict[str, Any], template: str) -> list[Any]:
        node = str(bound.get("node"))
        if name == "node":
            return self.nodes
        if name == "vmid":
            kind = "lxc" if "/lxc/" in template else "qemu"
            return self.guests.get((node, kind), [])
        if name == "storage":
            return self.storages[node]
        if name == "iface":
            return self.ifaces[node]
        if name == "upid":
            return self.upids.get(node, [])[:2]
        if name == "snapname":
            return self.snapshots.get((node, bound["vmid"]), [])
        if name == "userid":
            return ["root@pam", "auditor@pve"]
        if name == "id":
            return self.backup_jobs
        raise AssertionError(f"no values for {{{name}}} in {template}")


def concrete_paths(template: str, world: World) -> list[tuple[str, dict[str, Any]]]:
    names = re.findall(r"\{([^}]+)\}", template)
    results: list[tuple[str, dict[str, Any]]] = []

    def fill(index: int, bound: dict[str, Any]) -> None:
        if index == len(names):
            path = template
            for key, value in bound.items():
                path = path.replace(f"{{{key}}}", str(value))
            results.append((path, dict(bound)))
            return
        for value in world.values(names[index], bound, template):
            fill(index + 1, {**bound, names[index]: value})

    fill(0, {})
    return results


QUERY_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "/cluster/resources": [{}, {"type": "vm"}, {"type": "node"}, {"type": "storage"}, {"type": "sdn"}],
    "/nodes/{node}/tasks": [{}, {"source": "all"}, {"source": "active"}, {"errors": 1}, {"limit": 1, "start": 1}],
    "/nodes/{node}/qemu": [{}, {"full": 1}],
    "/nodes/{node}/storage": [{}, {"content": "images"}, {"format": 1}],
    "/nodes/{node}/storage/{storage}/content": [{}, {"content": "iso"}, {"content": "backup"}],
    "/nodes/{node}/network": [{}, {"type": "bridge"}, {"type": "any_bridge"}],
    "/access/users": [{}, {"full": 1}],
    "/nodes/{node}/tasks/{upid}/log": [{}, {"start": 1, "limit": 1}],
    "/storage": [{}, {"type": "dir"}],
}
# Answers other than 200 that a real node gives for some of the guests in the sweep.
EXPECTED_REFUSALS = {
    "/nodes/{node}/lxc/{vmid}/interfaces": "not running",
    "/nodes/{node}/qemu/{vmid}/agent": None,
}


def _prepare(api: Api, world: World) -> None:
    for node in world.nodes:
        for kind in ("qemu", "lxc"):
            for vmid in world.guests.get((node, kind), []):
                config = api.get(f"/nodes/{node}/{kind}/{vmid}/config")
                if config.get("template"):
                    continue
                response = api.request("POST", f"/nodes/{node}/{kind}/{vmid}/snapshot", snapname="conformance")
                assert response.status_code == 200, response.reason
                _wait_task(api, node, response.json()["data"])
                world.snapshots[(node, vmid)] = [
                    s["name"] for s in api.get(f"/nodes/{node}/{kind}/{vmid}/snapshot") if s["name"] != "current"
                ]
        world.upids[node] = [t["upid"] for t in api.get(f"/nodes/{node}/tasks", source="all")]
    for (node, kind), vmids in world.guests.items():
        if kind != "qemu":
            continue
        for vmid in vmids:
            status = api.get(f"/nodes/{node}/qemu/{vmid}/status/current")
            if status["status"] == "running" and status.get("agent"):
                response = api.request("POST", f"/nodes/{node}/qemu/{vmid}/agent/exec", command=["uname", "-a"])
                assert response.status_code == 200, response.reason
                world.agent_pid[vmid] = response.json()["data"]["pid"]


def test_every_get_answer_in_a_sweep_validates_against_the_full_schema(fresh_sim: SimInfo, admin: Api,
                                                                       root_ticket: Api) -> None:
    world = World(admin)
    _prepare(admin, world)
    validated: dict[str, int] = {}
    problems: list[str] = []
    for method, template in served_routes():
        if method != "GET":
            continue
        returns = full_method("GET", template)["returns"]
        for path, bound in concrete_paths(template, world):
            variants = QUERY_VARIANTS.get(template, [{}])
            if template.endswith("/agent/exec-status"):
                pid = world.agent_pid.get(bound["vmid"])
                variants = [{"pid": pid}] if pid else []
            if (
                template.endswith("/config")
                and "snapshot/" not in template
                and (bound["node"], bound["vmid"]) in (world.snapshots)
            ):
                variants = [{}, {"snapshot": world.snapshots[(bound["node"], bound["vmid"])][0]}]
            for params in variants:
                # A method without permissions is root@pam's alone (an API token of root is refused).
                root_only = not (method_schema("GET", template) or {}).get("permissions")
                response = (root_ticket if root_only else admin).request("GET", path, **params)
                if response.status_code != 200:
                    agent_refusal = "/agent" in template and "agent" in response.reason.lower()
                    if agent_refusal or "not running" in response.reason:
                        continue
                    problems.append(f"GET {path} {params}: {response.status_code} {response.reason}")
                    continue
                errors = return_errors(returns, response.json()["data"])
                problems.extend(f"GET {path} {params}: {error}" for error in errors)
                validated[template] = validated.get(template, 0) + 1
    unvalidated = [t for m, t in served_routes() if m == "GET" and t not in validated]
    assert problems == []
    assert unvalidated == []


def test_every_served_route_rejects_a_parameter_the_schema_does_not_declare(admin: Api, root_ticket: Api) -> None:
    world = World(admin)
    world.upids = {
        node: [t["upid"] for t in admin.get(f"/nodes/{node}/tasks", source="all")][:1] for node in world.nodes
    }
    for node in world.nodes:
        for kind in ("qemu", "lxc"):
            for vmid in world.guests.get((node, kind), []):
                world.snapshots[(node, vmid)] = ["before-upgrade"]
    checked = 0
    for method, template in served_routes():
        filled = concrete_paths(template, world)
        if not filled or full_method(method, template)["parameters"].get("additionalProperties"):
            continue
        path, _ = filled[0]
        root_only = not (method_schema(method, template) or {}).get("permissions")
        api = root_ticket if root_only else admin  # root@pam only (e.g. /nodes/{node}/execute): tokens get 403
        response = api.request(method, path, pmcp_bogus="1")
        assert response.status_code == 400, (method, path, response.status_code, response.reason)
        assert "pmcp_bogus" in response.json()["errors"], (method, path)
        checked += 1
    assert checked >= len(served_routes()) - 3
