"""Each tool beyond the six against the simulator (alpha, the default cluster), with a bad-argument case each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from proxmox_mcp_gateway.routing_gate import REFUSED_BY_GATEWAY

from tests.integration.tools.helpers import ToolsStack, call_error, call_ok, guests
from tests.support.mcp_client import SimClient, http_client


@pytest.fixture
def sim(tools_stack: ToolsStack) -> Iterator[SimClient]:
    with tools_stack.sim("alpha") as reader:
        yield reader


def connect(stack: ToolsStack) -> AbstractAsyncContextManager[Client]:
    """MCP clients are opened inside each test: an async fixture would close its task group in another task."""
    return http_client(stack.gateway.url, stack.gateway.token)


async def test_containers_are_listed_and_shown_as_the_simulator_has_them_and_vms_are_refused(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        listed = await call_ok(client, "list_containers", {})
        assert {c["vmid"] for c in listed["vms"]} == {g["vmid"] for g in sim.guests() if g["type"] == "lxc"}
        assert listed["count"] == len(listed["vms"]) and all(c["type"] == "lxc" for c in listed["vms"])
        running = await call_ok(client, "list_containers", {"status": "running"})
        assert {c["vmid"] for c in running["vms"]} == {g["vmid"] for g in guests(sim, "lxc", "running")}
        ct = listed["vms"][0]
        status = await call_ok(client, "container_status", {"vmid": ct["vmid"]})
        truth = sim.get(f"/nodes/{ct['node']}/lxc/{ct['vmid']}/status/current")
        assert (status["type"], status["status"], status["maxmem"]) == ("lxc", truth["status"], truth["maxmem"])
        vm = guests(sim, "qemu")[0]
        assert (await call_error(client, "container_status", {"vmid": vm["vmid"]}))[0] == "invalid_argument"
        assert (await call_error(client, "list_containers", {"type": "qemu"}))[0] == "invalid_argument"
        assert (await call_error(client, "container_status", {"vmid": 5}))[0] == "invalid_argument"


async def test_a_container_starts_and_shuts_down_with_confirmation_and_a_reset_or_a_vm_is_refused(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        ct = guests(sim, "lxc", "stopped")[0]
        started = await call_ok(client, "container_action", {"vmid": ct["vmid"], "action": "start", "wait": True})
        assert started["type"] == "lxc" and started["task"]["ok"] is True
        assert sim.guest(ct["vmid"])["status"] == "running"
        code, text = await call_error(client, "container_action", {"vmid": ct["vmid"], "action": "shutdown"})
        assert code == "policy_denied" and "confirm" in text
        await call_ok(client, "container_action", {"vmid": ct["vmid"], "action": "shutdown", "wait": True,
                                                   "confirm": True})
        assert sim.guest(ct["vmid"])["status"] == "stopped"
        assert (await call_error(client, "container_action", {"vmid": ct["vmid"], "action": "reset"}))[0] == \
            "invalid_argument"
        vm = guests(sim, "qemu", "stopped")[0]
        assert (await call_error(client, "container_action", {"vmid": vm["vmid"], "action": "start"}))[0] == \
            "invalid_argument"


async def test_a_snapshot_is_created_listed_rolled_back_and_deleted_with_confirmation(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        vm = guests(sim, "qemu")[0]
        base = f"/nodes/{vm['node']}/qemu/{vm['vmid']}/snapshot"
        created = await call_ok(client, "create_snapshot", {"vmid": vm["vmid"], "name": "pmcp-t1",
                                                            "description": "before", "wait": True})
        assert created["action"] == "snapshot_create" and created["snapshot"] == "pmcp-t1" and created["task"]["ok"]
        assert "pmcp-t1" in {s["name"] for s in sim.get(base)}
        listed = await call_ok(client, "list_snapshots", {"vmid": vm["vmid"]})
        assert "pmcp-t1" in {s["name"] for s in listed["snapshots"]} and listed["current_parent"] == "pmcp-t1"
        assert (await call_error(client, "rollback_snapshot", {"vmid": vm["vmid"], "name": "pmcp-t1"}))[0] == \
            "policy_denied"
        rolled = await call_ok(client, "rollback_snapshot", {"vmid": vm["vmid"], "name": "pmcp-t1", "wait": True,
                                                             "confirm": True})
        assert rolled["action"] == "snapshot_rollback" and rolled["task"]["ok"]
        deleted = await call_ok(client, "delete_snapshot", {"vmid": vm["vmid"], "name": "pmcp-t1", "wait": True,
                                                            "confirm": True})
        assert deleted["task"]["ok"] and "pmcp-t1" not in {s["name"] for s in sim.get(base)}
        assert (await call_error(client, "create_snapshot", {"vmid": vm["vmid"], "name": "1bad name"}))[0] == \
            "invalid_argument"
        assert (await call_error(client, "delete_snapshot", {"vmid": vm["vmid"], "name": "nosuchsnap",
                                                             "confirm": True}))[0] == "not_found"
        assert (await call_error(client, "list_snapshots", {"vmid": 99999}))[0] == "not_found"


async def test_storage_and_its_content_are_listed_as_the_simulator_has_them(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        node = next(n["node"] for n in sim.get("/nodes") if n["status"] == "online")
        listed = await call_ok(client, "list_storage", {"node": node})
        truth = sim.get(f"/nodes/{node}/storage")
        assert {s["storage"] for s in listed["storages"]} == {s["storage"] for s in truth}
        everywhere = await call_ok(client, "list_storage", {})
        assert {s["node"] for s in everywhere["storages"]} == {n["node"] for n in sim.get("/nodes")
                                                               if n["status"] == "online"}
        storage = next(s["storage"] for s in truth if "images" in s.get("content", ""))
        content = await call_ok(client, "storage_content", {"node": node, "storage": storage})
        volumes = sim.get(f"/nodes/{node}/storage/{storage}/content")
        assert {i["volid"] for i in content["items"]} == {v["volid"] for v in volumes}
        assert (await call_error(client, "list_storage", {"content": "bogus"}))[0] == "invalid_argument"
        assert (await call_error(client, "storage_content", {"node": node, "storage": "../etc"}))[0] == \
            "invalid_argument"
        assert (await call_error(client, "storage_content", {"storage": storage}))[0] == "invalid_argument"


async def test_a_started_task_is_listed_with_its_status_and_its_log(tools_stack: ToolsStack, sim: SimClient) -> None:
    async with connect(tools_stack) as client:
        ct = guests(sim, "lxc", "stopped")[0]
        started = await call_ok(client, "container_action", {"vmid": ct["vmid"], "action": "start", "wait": True})
        upid = started["upid"]
        listed = await call_ok(client, "list_tasks", {"vmid": ct["vmid"]})
        assert upid in {t["upid"] for t in listed["tasks"]} and all(t["id"] == str(ct["vmid"]) for t in listed["tasks"])
        status = await call_ok(client, "task_status", {"upid": upid, "log_lines": 5})
        truth = sim.get(f"/nodes/{started['node']}/tasks/{upid}/status")
        assert (status["status"], status["exitstatus"]) == (truth["status"], truth["exitstatus"])
        log = await call_ok(client, "task_log", {"upid": upid, "tail": 1})
        assert [line["t"] for line in log["lines"]] == ["TASK OK"]
        full = await call_ok(client, "task_log", {"upid": upid})
        assert [line["t"] for line in full["lines"]] == [e["t"] for e in sim.get(f"/nodes/{started['node']}/tasks/"
                                                                                 f"{upid}/log")]
        assert (await call_error(client, "list_tasks", {"limit": 0}))[0] == "invalid_argument"
        assert (await call_error(client, "task_status", {"upid": "UPID:nope"}))[0] == "invalid_argument"
        assert (await call_error(client, "task_log", {"upid": upid, "limit": 0}))[0] == "invalid_argument"
        await call_ok(client, "container_action", {"vmid": ct["vmid"], "action": "stop", "wait": True, "confirm": True})


async def test_cluster_status_resources_and_node_network_are_the_simulators(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        status = await call_ok(client, "cluster_status", {})
        truth = sim.get("/cluster/status")
        assert {n["name"] for n in status["nodes"]} == {e["name"] for e in truth if e["type"] == "node"}
        assert status["node_count"] == len(status["nodes"])
        resources = await call_ok(client, "cluster_resources", {})
        assert resources["count"] == len(sim.get("/cluster/resources"))
        nodes_only = await call_ok(client, "cluster_resources", {"type": "node"})
        assert {e["node"] for e in nodes_only["resources"]} == {n["node"] for n in sim.get("/nodes")}
        node = nodes_only["resources"][0]["node"]
        network = await call_ok(client, "node_network", {"node": node})
        assert {i["iface"] for i in network["interfaces"]} == {i["iface"] for i in sim.get(f"/nodes/{node}/network")}
        assert (await call_error(client, "cluster_status", {"verbose": True}))[0] == "invalid_argument"
        assert (await call_error(client, "cluster_resources", {"type": "bogus"}))[0] == "invalid_argument"
        assert (await call_error(client, "node_network", {}))[0] == "invalid_argument"
        assert (await call_error(client, "node_network", {"node": "nosuchnode"}))[0] in ("not_found", "upstream_error")


async def test_guest_exec_runs_an_allowed_command_in_a_vm_and_refuses_others_and_containers(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        vm = guests(sim, "qemu", "running")[0]
        config = f"/nodes/{vm['node']}/qemu/{vm['vmid']}/config"
        await call_ok(client, "proxmox_api", {"method": "PUT", "path": config, "data": {"agent": "1"}})
        result = await call_ok(client, "guest_exec", {"vmid": vm["vmid"], "command": "hostname"})
        assert result["stdout"] == f"{vm['name']}\n" and result["exit_code"] == 0 and result["type"] == "qemu"
        code, text = await call_error(client, "guest_exec", {"vmid": vm["vmid"], "command": "hostname; id"})
        assert code == "policy_denied" and "policy" in text
        assert (await call_error(client, "guest_exec", {"vmid": vm["vmid"]}))[0] == "invalid_argument"
        ct = guests(sim, "lxc")[0]
        assert (await call_error(client, "guest_exec", {"vmid": ct["vmid"], "command": "hostname"}))[0] == \
            "invalid_argument"


async def test_container_exec_runs_an_allowed_command_and_refuses_others(
    tools_stack: ToolsStack, sim: SimClient
) -> None:
    async with connect(tools_stack) as client:
        ct = guests(sim, "lxc", "running")[0]
        result = await call_ok(client, "container_exec", {"vmid": ct["vmid"], "command": "hostname"})
        assert result["exit_code"] == 0 and result["type"] == "lxc" and result["stdout"].strip()
        code, text = await call_error(client, "container_exec", {"vmid": ct["vmid"], "command": "rm -rf /"})
        assert code == "policy_denied" and "policy" in text
        assert (await call_error(client, "container_exec", {"vmid": ct["vmid"], "command": "x\x00y"}))[0] == \
            "invalid_argument"


async def test_scopes_hide_and_refuse_the_new_tools(tools_stack: ToolsStack) -> None:
    expected: dict[str, set[str]] = {
        "read": {"list_containers", "container_status", "list_snapshots", "list_storage", "storage_content",
                 "list_tasks", "task_status", "task_log", "wait_task", "cluster_status", "cluster_resources",
                 "node_network", "list_backups", "last_backups", "backup_jobs", "guest_network"},
        "operate": {"container_action", "create_snapshot", "backup_guest"},
        "exec": {"guest_exec", "container_exec"},
        "admin": {"delete_snapshot", "rollback_snapshot", "restore_backup"},
    }
    from proxmox_mcp_contracts.envelope import Scope

    seen: dict[str, set[str]] = {}
    for scope in Scope:
        async with http_client(tools_stack.gateway.url, tools_stack.token(scope), mode="legacy") as mcp:
            seen[scope.value] = {tool.name for tool in (await mcp.list_tools()).tools}
            if scope is Scope.OPERATE:
                code, text = await call_error(mcp, "delete_snapshot", {"vmid": 100, "name": "x1", "confirm": True})
                assert code == "permission_denied" and "needs scope admin" in text
        if scope is Scope.OPERATE:  # a 2026-era call names its tool in Mcp-Name: refused before its body is read
            async with http_client(tools_stack.gateway.url, tools_stack.token(scope)) as modern:
                with pytest.raises(MCPError) as refused:
                    await modern.call_tool("delete_snapshot", {"vmid": 100, "name": "x1", "confirm": True})
                assert refused.value.error.code == REFUSED_BY_GATEWAY
                assert refused.value.error.message.startswith("permission_denied: delete_snapshot needs scope admin")
    assert expected["read"] <= seen["read"] and not (seen["read"] & (expected["operate"] | expected["exec"]))
    assert expected["operate"] <= seen["operate"] and not (seen["operate"] & expected["exec"])
    assert expected["exec"] <= seen["exec"] and not (seen["exec"] & expected["admin"])
    assert set().union(*expected.values()) <= seen["admin"]


async def test_every_tool_has_cluster_and_destructive_ones_have_confirm(tools_stack: ToolsStack) -> None:
    async with connect(tools_stack) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert len(tools) == 30
        for tool in tools.values():
            assert tool.input_schema["type"] == "object" and "cluster" in tool.input_schema["properties"]
            assert tool.output_schema and tool.output_schema.get("type") == "object"
            annotations: Any = tool.annotations
            if annotations.read_only_hint:
                assert not annotations.destructive_hint and annotations.idempotent_hint
                assert "confirm" not in tool.input_schema["properties"]
            if annotations.destructive_hint:
                assert "confirm" in tool.input_schema["properties"], tool.name
        assert not tools["create_snapshot"].annotations.destructive_hint  # type: ignore[union-attr]
        assert tools["rollback_snapshot"].annotations.destructive_hint  # type: ignore[union-attr]
