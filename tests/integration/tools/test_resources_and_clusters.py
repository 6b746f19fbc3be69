"""Two clusters behind one gateway (the cluster argument; unknown names refused before NATS), resources and
resource templates with real simulator data, and the prompts."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.tools.helpers import ToolsStack, call_error, call_ok
from tests.support.mcp_client import http_client
from tests.support.procs import wait_until
from tests.support.sim import clear_sim_faults, sim_faults


async def _read(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    [content] = result.contents
    assert isinstance(content, types.TextResourceContents) and content.uri == uri
    return json.loads(content.text) if content.mime_type == "application/json" else content.text


async def test_the_cluster_argument_reaches_each_simulator(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        for name in ("alpha", "beta"):
            with tools_stack.sim(name) as sim:
                truth_vms = {g["vmid"] for g in sim.guests()}
                truth_nodes = {n["node"] for n in sim.get("/nodes")}
            vms = await call_ok(client, "list_vms", {"cluster": name})
            assert {v["vmid"] for v in vms["vms"]} == truth_vms
            nodes = await call_ok(client, "node_status", {"cluster": name})
            assert {n["node"] for n in nodes["nodes"]} == truth_nodes
            status = await call_ok(client, "cluster_status", {"cluster": name})
            assert status["node_count"] == len(truth_nodes)
        default = await call_ok(client, "list_vms", {})
        alpha = await call_ok(client, "list_vms", {"cluster": "alpha"})
        assert [(v["vmid"], v["node"]) for v in default["vms"]] == [(v["vmid"], v["node"]) for v in alpha["vms"]]
        assert len(tools_stack.alpha.nodes) != len(tools_stack.beta.nodes)  # the two answers really differ


@pytest.mark.parametrize("tool,args", [("list_vms", {}), ("execute_command", {"command": "uptime"}),
                                       ("vm_action", {"vmid": 100, "action": "stop", "confirm": True})])
async def test_an_unknown_cluster_is_refused_naming_the_known_ones(tools_stack: ToolsStack, tool: str,
                                                                   args: dict[str, Any]) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        code, text = await call_error(client, tool, {**args, "cluster": "gamma"})
    assert code == "invalid_argument" and "'gamma'" in text and "alpha, beta" in text
    [record] = [r for r in tools_stack.records(tool) if r["arguments"].get("cluster") == "gamma"][-1:]
    # Refused before any policy decision or NATS request: nothing was started, nothing dispatched.
    assert record["result"] == "invalid_argument" and record["event"] == "tool_call"
    assert "cluster" not in record and not [r for r in tools_stack.audit() if r["event"] == "tool_call_started"
                                            and r["arguments"].get("cluster") == "gamma"]


async def test_resources_list_templates_and_reads_carry_simulator_data(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        uris = {r.uri for r in (await client.list_resources()).resources}
        assert {"proxmox://clusters", "proxmox://nodes", "proxmox://vms", "proxmox://terminal", "proxmox://api",
                "proxmox://clusters/alpha/nodes", "proxmox://clusters/alpha/vms",
                "proxmox://clusters/beta/nodes", "proxmox://clusters/beta/vms"} <= uris
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {"proxmox://vms/{vmid}", "proxmox://clusters/{cluster}/nodes",
                             "proxmox://clusters/{cluster}/vms", "proxmox://clusters/{cluster}/vms/{vmid}",
                             "proxmox://clusters/{cluster}/tasks/{upid}"}

        clusters = await _read(client, "proxmox://clusters")
        assert clusters["default"] == "alpha" and [c["name"] for c in clusters["clusters"]] == ["alpha", "beta"]
        with tools_stack.sim("beta") as beta, tools_stack.sim("alpha") as alpha:
            beta_vms = await _read(client, "proxmox://clusters/beta/vms")
            assert {v["vmid"] for v in beta_vms["vms"]} == {g["vmid"] for g in beta.guests()}
            beta_nodes = await _read(client, "proxmox://clusters/beta/nodes")
            assert {n["node"] for n in beta_nodes["nodes"]} == {n["node"] for n in beta.get("/nodes")}
            short = await _read(client, "proxmox://vms")
            assert {v["vmid"] for v in short["vms"]} == {g["vmid"] for g in alpha.guests()}
            guest = beta.guests()[0]
            one = await _read(client, f"proxmox://clusters/beta/vms/{guest['vmid']}")
            assert (one["vmid"], one["node"], one["status"]) == (guest["vmid"], guest["node"], guest["status"])
            short_one = await _read(client, f"proxmox://vms/{alpha.guests()[0]['vmid']}")
            assert short_one["vmid"] == alpha.guests()[0]["vmid"]
            assert (await _read(client, "proxmox://nodes"))["nodes"]
        started = await call_ok(client, "create_snapshot", {"vmid": guest["vmid"], "name": "resource-read",
                                                            "cluster": "beta"})
        task = await _read(client, f"proxmox://clusters/beta/tasks/{started['upid']}")
        assert task["upid"] == started["upid"] and task["status"] == "running" and task["type"].endswith("snapshot")
        assert "execute_command" in await _read(client, "proxmox://terminal")

        for bad, words in [("proxmox://clusters/gamma/vms", "unknown cluster"), ("proxmox://nope", "unknown resource"),
                           ("proxmox://clusters/alpha/vms/99999", "99999"),
                           ("proxmox://clusters/alpha/tasks/UPID:bad", "invalid")]:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(bad)
            assert words in str(caught.value), (bad, str(caught.value))


async def test_a_read_token_reads_the_resources(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.token(Scope.READ)) as client:
        assert (await _read(client, "proxmox://clusters"))["default"] == "alpha"
        assert (await _read(client, "proxmox://clusters/beta/vms"))["count"] > 0


async def test_the_prompts_are_listed_and_filled_in_and_bad_arguments_are_refused(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert {"diagnose_vm_start", "cluster_health_report", "snapshot_before_change"} <= set(prompts)
        assert [a.name for a in prompts["diagnose_vm_start"].arguments or []] == ["vmid", "cluster"]
        diagnose = await client.get_prompt("diagnose_vm_start", {"vmid": "101", "cluster": "beta"})
        text = diagnose.messages[0].content.text  # type: ignore[union-attr]
        assert "101" in text and 'cluster="beta"' in text and "list_tasks" in text
        report = await client.get_prompt("cluster_health_report", {})
        assert "cluster_status" in report.messages[0].content.text  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="vmid"):
            await client.get_prompt("diagnose_vm_start", {"vmid": "abc"})
        with pytest.raises(MCPError, match="unknown prompt"):
            await client.get_prompt("no_such_prompt", {})
        code, _ = await call_error(client, "list_vms", {"cluster": "Not A Name!"})
        assert code == "invalid_argument"


def _health(stack: ToolsStack) -> dict[str, Any]:
    return httpx2.get(f"{stack.gateway.base_url}/health", timeout=5).json()


def _beta_api(stack: ToolsStack) -> str | None:
    return _health(stack).get("clusters", {}).get("beta", {}).get("api", {}).get("status")


def _probe_up(stack: ToolsStack, check: str, cluster: str) -> float | None:
    text = httpx2.get(f"{stack.gateway.base_url}/metrics", timeout=5).text
    wanted = f'proxmox_mcp_probe_up{{check="{check}",cluster="{cluster}"}}'
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted)), None)


def test_health_probes_every_cluster_and_names_the_one_that_fails(tools_stack: ToolsStack) -> None:
    wait_until(lambda: _beta_api(tools_stack) == "ok", timeout=15, what="beta's api check")
    body = _health(tools_stack)
    assert body["cluster"] == "alpha" and set(body["clusters"]) == {"beta"}
    assert body["clusters"]["beta"]["ssh"]["status"] == "ok"
    sim_faults(tools_stack.beta, [{"path": "^/version$", "error_rate": 1.0, "status": 500}])
    try:
        wait_until(lambda: _beta_api(tools_stack) == "fail", timeout=15, what="beta's api check to fail")
        body = _health(tools_stack)
        assert body["status"] == "degraded"
        assert body["checks"]["api"]["status"] == "ok", "alpha's api must not be blamed for beta"
        assert "500" in body["clusters"]["beta"]["api"]["last_error"]
        assert _probe_up(tools_stack, "api", "beta") == 0.0 and _probe_up(tools_stack, "api", "alpha") == 1.0
    finally:
        clear_sim_faults(tools_stack.beta)
    wait_until(lambda: _beta_api(tools_stack) == "ok", timeout=15, what="beta's api check back")


def test_a_worker_checks_latency_is_its_first_answer_and_the_window_counts_instances(
    tools_stack: ToolsStack
) -> None:
    checks = _health(tools_stack)["checks"]
    for kind in ("ssh-worker", "api-worker"):
        check = checks[kind]
        assert check["status"] == "ok" and check["instances"] == 1, check
        # The discovery window is 0.5 s here; an idle worker on loopback answers in a few ms.
        assert 0 < check["latency_ms"] < 250, check
