"""The six tools through the whole stack the README's demo command starts: MCP HTTP (both eras), stdio, REST."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from mcp import Client

from tests.support.demo import DemoStack
from tests.support.mcp_client import SimClient, assert_matches_output_schema, http_client, stdio_mcp_client

SIX_TOOLS = {"execute_command", "list_vms", "vm_status", "vm_action", "node_status", "proxmox_api"}


def _stopped_vm(sim: SimClient, kind: str) -> dict[str, Any]:
    return next(g for g in sim.guests()
                if g["type"] == kind and g["status"] == "stopped" and not g.get("template"))


async def _call(client: Client, schemas: dict[str, Any], name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    assert result.content and result.content[0].type == "text" and result.content[0].text
    assert_matches_output_schema(result.structured_content, schemas[name])
    return result.structured_content  # type: ignore[return-value]


async def exercise_six_tools(client: Client, sim: SimClient) -> None:
    """Call every tool once and check each answer against the simulator's own state."""
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert names >= SIX_TOOLS
    for tool in listed.tools:
        assert tool.input_schema.get("type") == "object"
        assert tool.description and tool.annotations is not None
    schemas = {tool.name: tool.output_schema for tool in listed.tools}

    vms = await _call(client, schemas, "list_vms", {})
    truth = {g["vmid"]: g for g in sim.guests()}
    assert {v["vmid"] for v in vms["vms"]} == set(truth)
    for vm in vms["vms"]:
        assert vm["status"] == truth[vm["vmid"]]["status"]
        assert vm["node"] == truth[vm["vmid"]]["node"]
        assert vm["type"] == truth[vm["vmid"]]["type"]

    lxc_only = await _call(client, schemas, "list_vms", {"type": "lxc"})
    assert {v["vmid"] for v in lxc_only["vms"]} == {k for k, g in truth.items() if g["type"] == "lxc"}

    for kind in ("qemu", "lxc"):
        guest = next(g for g in truth.values() if g["type"] == kind)
        status = await _call(client, schemas, "vm_status", {"vmid": guest["vmid"]})
        current = sim.get(f"/nodes/{guest['node']}/{kind}/{guest['vmid']}/status/current")
        assert (status["type"], status["node"], status["status"]) == (kind, guest["node"], current["status"])
        assert status["maxmem"] == current["maxmem"]

    nodes = await _call(client, schemas, "node_status", {})
    assert sorted(n["node"] for n in nodes["nodes"]) == sorted(n["node"] for n in sim.get("/nodes"))
    one = await _call(client, schemas, "node_status", {"node": sim.sim["nodes"][0]})
    assert [n["node"] for n in one["nodes"]] == [sim.sim["nodes"][0]]

    version = await _call(client, schemas, "proxmox_api", {"method": "GET", "path": "/version"})
    assert version["data"]["version"] == sim.get("/version")["version"]

    target = _stopped_vm(sim, "qemu")
    started = await _call(client, schemas, "vm_action",
                          {"vmid": target["vmid"], "action": "start", "wait": True})
    assert started["upid"].startswith(f"UPID:{target['node']}:")
    assert started["task"]["status"] == "stopped" and started["task"]["exitstatus"] == "OK"
    assert sim.guest(target["vmid"])["status"] == "running"
    # stop is destructive: this client cannot ask its user (no elicitation), so it confirms explicitly.
    stopped = await _call(client, schemas, "vm_action", {"vmid": target["vmid"], "action": "stop", "wait": True,
                                                         "confirm": True})
    assert stopped["task"]["ok"] is True
    assert sim.guest(target["vmid"])["status"] == "stopped"

    hostname = await _call(client, schemas, "execute_command", {"command": "hostname"})
    assert hostname["exit_code"] == 0 and hostname["stdout"].strip()
    failing = await _call(client, schemas, "execute_command", {"command": "false"})
    assert failing["exit_code"] == 1


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_six_tools_work_over_streamable_http_in_both_protocol_eras(
    demo: DemoStack, sim: SimClient, mode: str
) -> None:
    async with http_client(demo.mcp_url, demo.token, mode=mode) as client:
        await exercise_six_tools(client, sim)


async def test_the_six_tools_work_over_stdio_with_the_demo_workers(
    demo: DemoStack, sim: SimClient, tmp_path: Any
) -> None:
    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", "stdio"]
    with open(tmp_path / "stdio.log", "w") as errlog:
        async with stdio_mcp_client(argv, {"NATS_URL": demo.nats_url, "LOG_LEVEL": "WARNING"}, errlog) as client:
            await exercise_six_tools(client, sim)


async def test_the_six_tools_work_through_the_rest_endpoints(demo: DemoStack, sim: SimClient, http: Any,
                                                    auth: dict[str, str]) -> None:
    listed = (await http.post("/api/mcp/tools/list", headers=auth)).json()["tools"]
    assert {t["name"] for t in listed} >= SIX_TOOLS
    schemas = {t["name"]: t["outputSchema"] for t in listed}

    async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = await http.post("/api/mcp/tools/call", headers=auth, json={"name": name, "arguments": arguments})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["isError"] is False
        assert_matches_output_schema(body["structuredContent"], schemas[name])
        return body["structuredContent"]

    vms = await call("list_vms", {})
    assert {v["vmid"] for v in vms["vms"]} == {g["vmid"] for g in sim.guests()}
    guest = sim.guests()[0]
    assert (await call("vm_status", {"vmid": guest["vmid"]}))["status"] == sim.guest(guest["vmid"])["status"]
    assert len((await call("node_status", {}))["nodes"]) == len(sim.get("/nodes"))
    assert (await call("proxmox_api", {"path": "/version"}))["data"] == sim.get("/version")
    assert (await call("execute_command", {"command": "hostname"}))["exit_code"] == 0
    target = _stopped_vm(sim, "lxc")
    started = await call("vm_action", {"vmid": target["vmid"], "action": "start", "wait": True})
    assert started["task"]["ok"] is True and sim.guest(target["vmid"])["status"] == "running"
    assert (await call("vm_action", {"vmid": target["vmid"], "action": "shutdown", "wait": True,
                                     "confirm": True}))["task"]["ok"]
    assert sim.guest(target["vmid"])["status"] == "stopped"


async def test_rest_errors_carry_the_http_status_of_their_code(demo: DemoStack, http: Any,
                                                             auth: dict[str, str]) -> None:
    bad = await http.post("/api/mcp/tools/call", headers=auth, json={"name": "vm_status", "arguments": {"vmid": "x"}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_argument"
    missing = await http.post("/api/mcp/tools/call", headers=auth,
                              json={"name": "vm_status", "arguments": {"vmid": 99999}})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    anonymous = await http.post("/api/mcp/tools/call", json={"name": "list_vms"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    garbage = await http.post("/api/mcp/tools/call", headers=auth, content=b"{not json")
    assert garbage.status_code == 400


async def test_open_endpoints_answer_without_a_token_and_hide_tool_names(demo: DemoStack, http: Any,
                                                                          auth: dict[str, str]) -> None:
    info = (await http.get("/api/mcp")).json()
    assert info["name"] == "proxmox-mcp" and "tools" not in info
    assert set((await http.get("/api/mcp", headers=auth)).json()["tools"]) >= SIX_TOOLS
    health = (await http.get("/health")).json()
    assert set(health["checks"]) >= {"nats", "ssh-worker", "api-worker", "ssh", "api"}
    ready = await http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert demo.sim["host"] not in str(health) or demo.sim["host"] == "127.0.0.1"
