"""A guest's IP addresses (issue 15, Done-when 3): a VM's through its QEMU guest agent, a container's from its host;
three distinct clear errors: guest not running, no agent configured, agent not answering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.tools.helpers import ToolsStack, call_error, call_ok, guests
from tests.support.mcp_client import SimClient, http_client
from tests.support.sim import reset_sim


@pytest.fixture
def sim(tools_stack: ToolsStack) -> Iterator[SimClient]:
    with tools_stack.sim("alpha") as reader:
        yield reader
    reset_sim(tools_stack.alpha)


def agent_vm(sim: SimClient, status: str) -> dict[str, Any]:
    return next(vm for vm in guests(sim, "qemu", status)
                if sim.get(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/config").get("agent") in (1, "1"))


async def test_a_vms_addresses_come_from_its_guest_agent(tools_stack: ToolsStack, sim: SimClient) -> None:
    vm = agent_vm(sim, "running")
    truth = sim.get(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/agent/network-get-interfaces")["result"]
    expected = {a["ip-address"] for i in truth for a in i["ip-addresses"] if not a["ip-address"].startswith("127.")}
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        result = await call_ok(client, "guest_network", {"vmid": vm["vmid"]})
        text = (await client.call_tool("guest_network", {"vmid": vm["vmid"]})).content[0].text  # type: ignore[union-attr]
    assert (result["source"], result["type"], result["node"]) == ("guest-agent", "qemu", vm["node"])
    assert set(result["ipv4"]) == expected and expected
    eth0 = next(i for i in result["interfaces"] if i["name"] == "eth0")
    assert eth0["mac"] == next(i["hardware-address"] for i in truth if i["name"] == "eth0")
    assert any(a["prefix"] == 24 and a["family"] == "ipv4" for a in eth0["addresses"])
    assert "127.0.0.1" not in result["ipv4"] and next(iter(expected)) in text


async def test_a_containers_addresses_come_from_its_host(tools_stack: ToolsStack, sim: SimClient) -> None:
    ct = guests(sim, "lxc", "running")[0]
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        result = await call_ok(client, "guest_network", {"vmid": ct["vmid"]})
        code, text = await call_error(client, "guest_network", {"vmid": guests(sim, "lxc", "stopped")[0]["vmid"]})
    assert (result["source"], result["type"]) == ("container", "lxc") and result["ipv4"]
    assert code == "conflict" and "is not running" in text and text.startswith("conflict: CT ")


async def failure(client: Any, vmid: int) -> tuple[str, str, str, bool]:
    """(code, text, details.reason, retryable) of a guest_network call that must fail."""
    result = await client.call_tool("guest_network", {"vmid": vmid})
    assert result.is_error and isinstance(result.structured_content, dict)
    error = result.structured_content
    text = result.content[0].text
    assert text.startswith(error["code"] + ":")
    return error["code"], text, error["details"]["reason"], error["retryable"]


async def test_the_three_agent_failures_are_told_apart(tools_stack: ToolsStack, sim: SimClient) -> None:
    stopped = agent_vm(sim, "stopped")
    running = agent_vm(sim, "running")
    config = f"/nodes/{running['node']}/qemu/{running['vmid']}/config"
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        not_running = await failure(client, stopped["vmid"])
        sim.request("PUT", config, agent="0")
        no_agent = await failure(client, running["vmid"])
        sim.request("PUT", config, agent="1")
        await call_ok(client, "vm_action", {"vmid": running["vmid"], "action": "suspend", "wait": True})
        silent = await failure(client, running["vmid"])  # a paused VM's agent cannot answer
        for bad in ({"vmid": 5}, {"vmid": running["vmid"], "type": "docker"}, {"vmid": running["vmid"], "x": 1}):
            assert (await call_error(client, "guest_network", bad))[0] == "invalid_argument", bad
        assert (await call_error(client, "guest_network", {"vmid": 4242}))[0] == "not_found"
        assert (await call_error(client, "guest_network", {"vmid": running["vmid"], "type": "lxc"}))[0] == \
            "invalid_argument"
    assert not_running[0::2] == ("conflict", "guest_not_running") and f"VM {stopped['vmid']} is not running" in \
        not_running[1]
    assert no_agent[0::2] == ("conflict", "agent_not_configured") and "no QEMU guest agent configured" in no_agent[1]
    assert silent[0::2] == ("unavailable", "agent_not_responding") and "does not answer" in silent[1]
    assert silent[3] is True and not_running[3] is False
