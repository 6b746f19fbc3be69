"""A node down (issue 15, Done-when 2): with one simulated node offline the multi-node tools and resources answer
within their deadline with the other nodes' data and the offline node named; tools about one node fail naming it;
with every node down the calls fail with `unavailable`. On beta (pve1, pve2)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.tools.helpers import FAST, ToolsStack, call_error, call_ok
from tests.support.mcp_client import http_client
from tests.support.sim import reset_sim, sim_node

BETA = {"cluster": "beta"}
DEADLINE = float(FAST["PMCP_API_TIMEOUT"])


@pytest.fixture(autouse=True)
def nodes_back_online(tools_stack: ToolsStack) -> Iterator[None]:
    yield
    for node in tools_stack.beta.nodes:
        sim_node(tools_stack.beta, node, online=True)
    reset_sim(tools_stack.beta)


def seeded(stack: ToolsStack) -> list[dict[str, Any]]:
    with stack.sim("beta") as sim:
        return sim.guests()


def names(result: dict[str, Any]) -> list[str]:
    assert result["unreachable_nodes"] == [u["node"] for u in result["unreachable"]]
    return result["unreachable_nodes"]


async def test_with_a_node_offline_every_list_answers_with_the_rest_and_names_it(tools_stack: ToolsStack) -> None:
    before = {g["vmid"]: g for g in seeded(tools_stack)}
    lost = {vmid for vmid, g in before.items() if g["node"] == "pve2"}
    assert lost and len(lost) < len(before)
    sim_node(tools_stack.beta, "pve2", online=False)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        vms = await call_ok(client, "list_vms", BETA)
        assert names(vms) == ["pve2"] and vms["unreachable"][0]["code"] == "offline"
        listed = {vm["vmid"]: vm for vm in vms["vms"]}
        assert set(listed) == set(before)  # guests of the lost node stay listed ...
        assert all(listed[v]["status"] == "unknown" and listed[v]["mem"] is None for v in lost)  # ... as unknown
        assert all(listed[v]["status"] == before[v]["status"] for v in set(before) - lost)
        text = (await client.call_tool("list_vms", BETA)).content[0].text  # type: ignore[union-attr]
        assert "node pve2 not included (offline)" in text
        running = await call_ok(client, "list_vms", {**BETA, "status": "running"})
        assert not {vm["vmid"] for vm in running["vms"]} & lost  # no stale 'running' passed off as current
        containers = await call_ok(client, "list_containers", BETA)
        assert names(containers) == ["pve2"]

        nodes = await call_ok(client, "node_status", BETA)
        assert names(nodes) == ["pve2"]
        state = {n["node"]: n for n in nodes["nodes"]}
        assert state["pve2"]["status"] == "offline" and state["pve1"]["status"] == "online"
        assert state["pve1"]["pveversion"] and state["pve2"]["mem"] is None

        storage = await call_ok(client, "list_storage", BETA)
        assert names(storage) == ["pve2"] and {s["node"] for s in storage["storages"]} == {"pve1"}
        resources = await call_ok(client, "cluster_resources", BETA)
        assert names(resources) == ["pve2"]
        assert names(await call_ok(client, "cluster_resources", {**BETA, "type": "vm"})) == ["pve2"]
        assert names(await call_ok(client, "list_tasks", BETA)) == ["pve2"]

        backups = await call_ok(client, "list_backups", BETA)
        assert names(backups) == ["pve2"] and "pbs-store" in backups["storages"]
        assert all(b["node"] != "pve2" for b in backups["backups"])  # pve2's local storage cannot be read
        last = await call_ok(client, "last_backups", BETA)
        assert names(last) == ["pve2"] and {g["vmid"] for g in last["guests"]} == set(before)

        for uri in ("proxmox://clusters/beta/vms", "proxmox://clusters/beta/nodes"):
            read = await client.read_resource(uri)
            data = json.loads(read.contents[0].text)  # type: ignore[union-attr]
            assert data["unreachable_nodes"] == ["pve2"], uri


async def test_tools_about_one_node_or_guest_fail_naming_the_offline_node(tools_stack: ToolsStack) -> None:
    guest = next(g for g in seeded(tools_stack) if g["node"] == "pve2" and g["type"] == "qemu")
    sim_node(tools_stack.beta, "pve2", online=False)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        for name, args in (("vm_status", {"vmid": guest["vmid"]}), ("node_network", {"node": "pve2"}),
                           ("storage_content", {"node": "pve2", "storage": "local"}),
                           ("list_storage", {"node": "pve2"}), ("guest_network", {"vmid": guest["vmid"]})):
            code, text = await call_error(client, name, {**BETA, **args})
            assert code == "unavailable" and "node pve2 is unreachable" in text, (name, text)
        one = await call_ok(client, "node_status", {**BETA, "node": "pve2"})
        assert one["nodes"][0]["status"] == "offline" and names(one) == ["pve2"]
        code, text = await call_error(client, "list_backups", {**BETA, "node": "pve2"})
        assert code == "unavailable" and "pve2" in text


async def test_a_hanging_node_costs_a_bounded_wait_not_the_whole_call(tools_stack: ToolsStack) -> None:
    # The cluster still counts pve2 (corosync has not noticed yet) but requests to it hang far past the deadline.
    sim_node(tools_stack.beta, "pve2", online=True, reachable=False, proxy_delay_ms=60_000)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        for name in ("list_storage", "node_status", "list_backups"):
            began = time.monotonic()
            result = await call_ok(client, name, BETA)
            elapsed = time.monotonic() - began
            assert elapsed < DEADLINE, (name, elapsed)
            assert names(result) == ["pve2"] and result["unreachable"][0]["code"] == "timeout", (name, result)
            if name == "list_storage":
                assert {s["node"] for s in result["storages"]} == {"pve1"}
        sim_node(tools_stack.beta, "pve2", online=True, reachable=False)  # refused at once instead
        storage = await call_ok(client, "list_storage", BETA)
        assert storage["unreachable"][0]["code"] == "unavailable"
        assert storage["unreachable"][0]["reason"] == ("node pve2 is unreachable: Proxmox could not forward GET "
                                                       "/nodes/pve2/storage to the node (No route to host)")


async def test_with_every_node_down_the_lists_fail_with_unavailable(tools_stack: ToolsStack) -> None:
    for node in tools_stack.beta.nodes:
        sim_node(tools_stack.beta, node, online=False)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        for name in ("list_vms", "node_status", "list_storage", "list_backups", "cluster_resources"):
            began = time.monotonic()
            code, _ = await call_error(client, name, BETA)
            assert code == "unavailable", name
            assert time.monotonic() - began < DEADLINE
        alpha = await call_ok(client, "list_vms", {})  # the other cluster is untouched
        assert alpha["count"] > 0 and alpha["unreachable"] == []
