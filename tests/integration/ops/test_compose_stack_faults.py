"""The compose demo under faults, on the session's stack (after test_compose_stack.py): processes killed from
the host come back by the restart policy, no replied call loses its audit record, the simulator restarts
without breaking the workers, `down`/`up` keeps tokens and audit; and every Grafana panel has data in the
containerised Prometheus (failure panels after injected failures)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import httpx2
import pytest

from tests.support.compose_stack import ComposeStack
from tests.support.grafana import DASHBOARDS, dashboard_queries
from tests.support.procs import wait_until

# The first test of a session builds the images (minutes when cold) and starts the stack.
pytestmark = pytest.mark.timeout(900)

RESTART_BUDGET = 30.0


def _kill_main_process(stack: ComposeStack, service: str) -> tuple[str, int]:
    """SIGKILL the container's main process from the host (a `docker kill` is a stop by the user, which restart
    policies deliberately ignore). Returns the container id and its restart count before."""
    container = stack.containers(service)[0]
    pid = int(container["State"]["Pid"])
    assert pid > 1
    os.kill(pid, signal.SIGKILL)
    return str(container["Id"]), int(container["RestartCount"])


def _restarted(stack: ComposeStack, container_id: str, restarts_before: int) -> bool:
    now = next((c for c in stack.containers() if c["Id"] == container_id), None)
    return now is not None and now["State"]["Running"] and int(now["RestartCount"]) > restarts_before


def _succeeds(stack: ComposeStack, name: str, arguments: dict[str, Any]) -> bool:
    try:
        response = stack.rest_call(name, arguments)
    except httpx2.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("isError") is False


def test_a_worker_killed_from_the_host_is_restarted_and_calls_succeed_within_30_s(
    compose_stack: ComposeStack,
) -> None:
    assert _succeeds(compose_stack, "list_vms", {})
    container_id, before = _kill_main_process(compose_stack, "api-worker")
    started = time.monotonic()
    wait_until(lambda: _restarted(compose_stack, container_id, before), timeout=RESTART_BUDGET,
               what="the restart policy to bring the api-worker back", interval=0.5)
    wait_until(lambda: _succeeds(compose_stack, "list_vms", {}), timeout=RESTART_BUDGET - (time.monotonic() - started),
               what="list_vms to succeed again", interval=0.5)


def _traceparent(index: int) -> tuple[str, str]:
    trace_id = os.urandom(12).hex() + f"{index:08x}"
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


def _audit_trace_ids(stack: ComposeStack) -> set[str]:
    text = stack.exec("gateway", "cat", "/var/lib/proxmox-mcp/gateway/audit.jsonl")
    return {str(json.loads(line).get("trace_id")) for line in text.splitlines() if line.strip()}


def test_a_gateway_killed_mid_traffic_restarts_and_every_call_it_answered_is_audited(
    compose_stack: ComposeStack,
) -> None:
    answered: list[str] = []
    killed: dict[str, Any] = {}

    async def traffic() -> None:
        async with httpx2.AsyncClient(verify=compose_stack.tls(), timeout=30,
                                      headers={"Authorization": f"Bearer {compose_stack.token}"}) as client:
            async def call(index: int) -> None:
                trace_id, header = _traceparent(index)
                try:
                    response = await client.post(compose_stack.url("/api/mcp/tools/call"),
                                                 json={"name": "execute_command", "arguments": {"command": "uptime"}},
                                                 headers={"traceparent": header})
                    body = response.json()
                except (httpx2.HTTPError, ValueError):
                    return  # no answer from the gateway (Caddy's 502 has no JSON body)
                if "isError" in body:
                    answered.append(trace_id)

            for index in range(0, 120, 4):
                if index == 40:
                    killed["id"], killed["before"] = _kill_main_process(compose_stack, "gateway")
                await asyncio.gather(*(call(index + i) for i in range(4)))

    asyncio.run(traffic())
    assert killed and len(answered) >= 40
    wait_until(lambda: _restarted(compose_stack, killed["id"], killed["before"]), timeout=RESTART_BUDGET,
               what="the restart policy to bring the gateway back", interval=0.5)
    wait_until(lambda: _succeeds(compose_stack, "execute_command", {"command": "uptime"}), timeout=RESTART_BUDGET,
               what="calls through the restarted gateway", interval=0.5)
    missing = set(answered) - _audit_trace_ids(compose_stack)
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no audit record"


def test_the_simulator_restarted_keeps_working_with_the_workers(compose_stack: ComposeStack) -> None:
    before = json.loads(compose_stack.exec("pve-sim", "cat", "/data/ready.json"))
    started = compose_stack.containers("pve-sim")[0]["State"]["StartedAt"]
    compose_stack.compose("restart", "pve-sim")
    compose_stack.wait_healthy(timeout=60)
    assert compose_stack.containers("pve-sim")[0]["State"]["StartedAt"] != started
    after = json.loads(compose_stack.exec("pve-sim", "cat", "/data/ready.json"))
    assert (after["admin_token"], after["ssh_node_ports"], after["fingerprint"]) == (
        before["admin_token"], before["ssh_node_ports"], before["fingerprint"])
    for name, arguments in (("list_vms", {}), ("node_status", {}), ("execute_command", {"command": "hostname"})):
        wait_until(lambda n=name, a=arguments: _succeeds(compose_stack, n, a), timeout=RESTART_BUDGET,
                   what=f"{name} against the restarted simulator", interval=0.5)


def _inject_what_failure_panels_show(stack: ComposeStack) -> None:
    assert stack.rest_call("list_vms", {}, token="pmcp_not-a-token").status_code == 401
    denied = stack.rest_call("execute_command", {"command": "rm -rf /"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "policy_denied"
    # The stack limits cluster_status to one call a minute (PMCP_TOOL_RATE_LIMITS from the environment).
    codes = {stack.rest_call("cluster_status", {}).status_code for _ in range(2)}
    assert 429 in codes, codes
    # A server-side error (it counts against the SLO): a command that outlives its timeout.
    slow = stack.rest_call("execute_command", {"command": "sleep 5", "timeout": 1})
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "timeout", slow.text
    long = stack.rest_call("execute_command", {"command": "seq 1 200000"})
    assert long.status_code == 200 and long.json()["structuredContent"]["truncated"] is True
    guests = stack.rest_call("list_vms", {"type": "qemu", "status": "stopped"}).json()["structuredContent"]["vms"]
    vmid = next(g["vmid"] for g in guests if not g.get("template"))
    for action in ("start", "stop"):
        done = stack.rest_call("vm_action", {"vmid": vmid, "action": action, "wait": True, "confirm": True})
        assert done.status_code == 200 and done.json()["structuredContent"]["task"]["ok"] is True, done.text


def test_every_dashboard_panel_returns_series_from_the_containerised_prometheus(compose_stack: ComposeStack) -> None:
    if not compose_stack.prometheus("proxmox_mcp_ssh_reconnects_total"):
        # Pooled SSH connections are replaced after their transport died: a simulator restart does that.
        test_the_simulator_restarted_keeps_working_with_the_workers(compose_stack)
    _inject_what_failure_panels_show(compose_stack)
    queries = [q for dashboard in DASHBOARDS for q in dashboard_queries(dashboard)]
    assert queries
    empty: list[str] = []

    def all_have_series() -> bool:
        empty[:] = [f"{q.dashboard} panel {q.panel_id} {q.panel_title!r} {q.ref_id}: {q.expr}"
                    for q in queries if not compose_stack.prometheus(q.expr)]
        return not empty

    deadline = 120  # rate() over 1m needs two 15 s scrapes after the events; recording rules one evaluation
    try:
        wait_until(all_have_series, timeout=deadline, what="every panel query to return series", interval=5)
    except TimeoutError:
        raise AssertionError("panels without data in the containerised Prometheus:\n" + "\n".join(empty)) from None


def test_down_then_up_keeps_tokens_and_the_audit_log(compose_stack: ComposeStack) -> None:
    created = json.loads(compose_stack.exec("gateway", "proxmox-mcp", "token", "create", "--name", "kept-across-down",
                                            "--scope", "read", "--json"))
    assert compose_stack.rest_call("list_vms", {}, token=created["token"]).status_code == 200
    audit_before = compose_stack.exec("gateway", "cat", "/var/lib/proxmox-mcp/gateway/audit.jsonl").splitlines()
    compose_stack.compose("--profile", "demo", "down", "--timeout", "10", timeout=180)
    assert not compose_stack.containers(all_states=True)
    compose_stack.up()
    assert compose_stack.exec("gateway", "cat", "/run/proxmox-mcp/gateway/token").strip() == compose_stack.token
    assert compose_stack.rest_call("list_vms", {}, token=created["token"]).status_code == 200
    audit_after = compose_stack.exec("gateway", "cat", "/var/lib/proxmox-mcp/gateway/audit.jsonl").splitlines()
    assert audit_after[: len(audit_before)] == audit_before and len(audit_after) > len(audit_before)
