"""Monitoring the real stack: Prometheus scrapes gateway and workers, every dashboard panel reads what some process
exports, the workers' $SRV.STATS agree with their metrics, and health follows hosts going down."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import nats
import pytest
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families
from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_contracts.subjects import API_SERVICE_NAME, ApiOp, endpoint_name
from proxmox_mcp_gateway.settings import DEFAULT_TOOL_RATES
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from tests.support.grafana import (
    DASHBOARDS,
    PROMETHEUS_MADE,
    dashboard_queries,
    source_metrics,
    variable_metric_names,
)
from tests.support.mcp_client import http_client
from tests.support.nats import NatsServer, start_nats
from tests.support.procs import Proc, free_port, wait_until
from tests.support.prometheus import recording_rules, scrape_config, scraped_sample_names, start_prometheus
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, clear_sim_faults, sim_faults, start_sim
from tests.support.sshd import SshdServer, start_sshd

RATE_LIMITED_TOOL = "cluster_status"
"""Limited to one call a minute here, so a test can see a real 429 (no other test of this module calls it)."""
FAST = {"PMCP_PROBE_INTERVAL": "0.3", "PMCP_PROBE_TIMEOUT": "1", "PMCP_HEARTBEAT_INTERVAL": "0.2",
        "PMCP_API_TIMEOUT": "3", "PMCP_TOOL_RATE_LIMITS": f"{DEFAULT_TOOL_RATES},{RATE_LIMITED_TOOL}=1/m"}


@dataclass
class MonitoredStack:
    workdir: Path
    nats: NatsServer
    sim: SimInfo
    sshd: SshdServer
    gateway: GatewayProc
    workers: dict[str, Proc]
    worker_ports: dict[str, int]
    config_path: Path

    def metrics_urls(self) -> dict[str, str]:
        """Every process's /metrics (the gateway's own port; each worker's PMCP_METRICS_PORT)."""
        return {"gateway": f"{self.gateway.base_url}/metrics",
                **{kind: f"http://127.0.0.1:{port}/metrics" for kind, port in self.worker_ports.items()}}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredStack]:
    workdir = tmp_path_factory.mktemp("monitored")
    nats = start_nats(workdir / "nats")
    sim = start_sim(workdir / "sim")
    sshd = start_sshd(workdir / "sshd")
    procs: list[Proc] = [nats.proc, sim.proc]
    try:
        token = sim.admin_token
        cluster = ClusterConfig(
            hosts=[HostConfig(node="pve1", address="127.0.0.1", port=sshd.port)],
            ssh=SshSettings(user=sshd.user, key_path=sshd.ed25519_key, known_hosts=sshd.known_hosts,
                            connect_timeout=2),
            api=ApiSettings(host=sim.host, port=sim.api_port, user=token["user"], token_name=token["token_id"],
                            token_value=SecretStr(token["secret"]), fingerprint=sim.fingerprint, timeout=2),
        )
        config = write_private(workdir / "clusters.toml", dump_config_toml(ProxmoxConfig(clusters=[cluster])))
        ports = {kind: free_port() for kind in ("ssh-worker", "api-worker")}
        workers = {kind: start_worker(kind, nats.url, config, workdir, env={"PMCP_METRICS_PORT": str(port)})
                   for kind, port in ports.items()}
        procs += workers.values()
        gateway = start_gateway(nats.url, workdir, env=FAST)
        procs.append(gateway.proc)
        wait_ready(gateway)
        stack = MonitoredStack(workdir, nats, sim, sshd, gateway, workers, ports, config)
        yield stack
        procs += stack.workers.values()  # tests replace workers
    finally:
        for proc in reversed(procs):
            proc.stop()
        sshd.close()


async def test_prometheus_sees_tool_counters_and_latency_histograms_move(monitored: MonitoredStack) -> None:
    gateway_target = monitored.gateway.base_url.removeprefix("http://")
    jobs = {"gateway": [gateway_target],
            **{kind: [f"127.0.0.1:{port}"] for kind, port in monitored.worker_ports.items()}}
    prometheus = start_prometheus(monitored.workdir / "prometheus", scrape_config(jobs))
    try:
        async with http_client(monitored.gateway.url, monitored.gateway.token) as client:
            for _ in range(3):
                assert not (await client.call_tool("list_vms", {})).is_error
            assert (await client.call_tool("vm_status", {"vmid": 999_999})).is_error
            assert (await client.call_tool("execute_command", {"command": "rm -rf /"})).is_error
            assert not (await client.call_tool("execute_command", {"command": "whoami"})).is_error
        ok = prometheus.wait_for('proxmox_mcp_tool_calls_total{tool="list_vms",code="ok"} >= 3', timeout=30)
        assert ok[0]["metric"]["job"] == "gateway"
        prometheus.wait_for('proxmox_mcp_tool_calls_total{tool="vm_status",code="not_found"}', timeout=15)
        prometheus.wait_for('proxmox_mcp_tool_calls_total{tool="execute_command",code="policy_denied"}', timeout=15)
        prometheus.wait_for('proxmox_mcp_tool_call_duration_seconds_count{tool="list_vms"} >= 3', timeout=15)
        prometheus.wait_for('proxmox_mcp_worker_requests_total{job="api-worker",op="list_vms"}', timeout=15)
        prometheus.wait_for('proxmox_mcp_worker_request_duration_seconds_count{job="ssh-worker",op="exec"}',
                            timeout=15)
        prometheus.wait_for('proxmox_mcp_api_requests_total{job="api-worker",status_class="2xx"}', timeout=15)
        prometheus.wait_for('proxmox_mcp_ssh_pool_connections{job="ssh-worker"} >= 1', timeout=15)
        labels = {tuple(sorted(s["metric"])) for s in prometheus.vector("proxmox_mcp_tool_calls_total")}
        assert all(set(keys) <= {"__name__", "instance", "job", "tool", "code"} for keys in labels)
    finally:
        prometheus.proc.stop()


def test_every_process_of_the_stack_reports_its_nats_connection_as_up(monitored: MonitoredStack) -> None:
    for process, url in monitored.metrics_urls().items():
        text = httpx2.get(url, timeout=5).text
        connected = [line for line in text.splitlines() if line.startswith("proxmox_mcp_nats_connected ")]
        assert connected == ["proxmox_mcp_nats_connected 1.0"], (process, connected)
        assert "proxmox_mcp_nats_reconnects_total 0.0" in text.splitlines(), process


def _metric_sample(url: str, name: str, labels: dict[str, str]) -> float:
    text = httpx2.get(url, timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


async def _endpoint_stats(nats_url: str, service: str, endpoint: str) -> dict[str, Any]:
    """One instance of each worker kind runs here, so one $SRV.STATS reply is the whole picture."""
    nc = await nats.connect(nats_url)
    try:
        reply = await nc.request(f"$SRV.STATS.{service}", b"", timeout=5)
    finally:
        await nc.close()
    return next(e for e in json.loads(reply.data)["endpoints"] if e["name"] == endpoint)


async def test_worker_service_stats_count_real_calls_with_the_failed_one_and_agree_with_the_worker_metrics(
    monitored: MonitoredStack,
) -> None:
    endpoint = endpoint_name("default", ApiOp.VM_STATUS)
    api_metrics = monitored.metrics_urls()["api-worker"]
    labels = {"kind": "api", "op": "vm_status"}
    before = await _endpoint_stats(monitored.nats.url, API_SERVICE_NAME, endpoint)
    seconds_before = _metric_sample(api_metrics, "proxmox_mcp_worker_request_duration_seconds_sum", labels)
    latency = 0.25
    sim_faults(monitored.sim, [{"path": r"/status/current$", "latency_ms": latency * 1000}])
    try:
        started = time.monotonic()
        async with http_client(monitored.gateway.url, monitored.gateway.token) as client:
            vms = (await client.call_tool("list_vms", {})).structured_content["vms"]  # type: ignore[index]
            for vm in vms[:2]:
                assert not (await client.call_tool("vm_status", {"vmid": vm["vmid"]})).is_error
            failed = await client.call_tool("vm_status", {"vmid": 999_998})
        wall_ns = (time.monotonic() - started) * 1e9
    finally:
        clear_sim_faults(monitored.sim)
    assert failed.is_error and failed.structured_content["code"] == "not_found"  # type: ignore[index]

    after = await _endpoint_stats(monitored.nats.url, API_SERVICE_NAME, endpoint)
    assert after["num_requests"] - before["num_requests"] == 3
    assert after["num_errors"] - before["num_errors"] == 1
    assert after["last_error"] == "not_found"
    spent_ns = after["processing_time"] - before["processing_time"]
    assert 2 * latency * 1e9 <= spent_ns <= wall_ns
    assert after["average_processing_time"] == after["processing_time"] // after["num_requests"]
    # The same measurement feeds the worker's own histogram.
    spent_seconds = _metric_sample(api_metrics, "proxmox_mcp_worker_request_duration_seconds_sum", labels)
    assert abs((spent_seconds - seconds_before) - spent_ns / 1e9) < 1e-3


async def _exercise_every_panel(stack: MonitoredStack) -> None:
    """Calls that move what the dashboard plots: results ok and failed, a policy refusal, a 429, a refused
    request, a command over SSH, a task followed to its end."""
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        vms = (await client.call_tool("list_vms", {})).structured_content["vms"]  # type: ignore[index]
        assert (await client.call_tool("vm_status", {"vmid": 999_997})).is_error
        assert (await client.call_tool("execute_command", {"command": "rm -rf /"})).is_error
        assert not (await client.call_tool("execute_command", {"command": "uptime"})).is_error
        assert not (await client.call_tool(RATE_LIMITED_TOOL, {})).is_error
        with pytest.raises(MCPError) as limited:  # a 2026-era call: refused from its Mcp-Name header
            await client.call_tool(RATE_LIMITED_TOOL, {})
        assert isinstance(limited.value.error.data, dict) and limited.value.error.data["code"] == "rate_limited"
        stopped = next(vm for vm in vms if vm["status"] == "stopped" and vm["type"] == "qemu")
        started = await client.call_tool("vm_action", {"vmid": stopped["vmid"], "action": "start", "wait": True})
        assert not started.is_error, started.content
    refused = httpx2.post(stack.gateway.url, json={}, timeout=5)
    assert refused.status_code == 401


async def test_every_dashboard_panel_reads_metrics_a_process_of_the_stack_exports(monitored: MonitoredStack) -> None:
    await _exercise_every_panel(monitored)
    rules = recording_rules()
    needed: dict[str, set[str]] = {}
    for dashboard in DASHBOARDS:
        for query in dashboard_queries(dashboard):
            for metric in source_metrics(query.expr, rules) - PROMETHEUS_MADE:
                needed.setdefault(metric, set()).add(f"{dashboard.name}: {query.panel_title!r} ({query.ref_id})")
        for metric in variable_metric_names(dashboard):
            needed.setdefault(metric, set()).add(f"{dashboard.name}: a template variable")
    assert len(needed) >= 25

    def missing() -> dict[str, set[str]]:
        exported = set().union(*(scraped_sample_names(url) for url in monitored.metrics_urls().values()))
        return {metric: panels for metric, panels in needed.items() if metric not in exported}

    # Probes and the certificate check run on their own schedule: give them a few rounds, then name what is left.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not missing(), timeout=15, what="every dashboard metric", interval=0.2)
    unproduced = missing()
    assert not unproduced, "dashboard metrics no process of the stack exports:\n" + "\n".join(
        f"{metric}: {', '.join(sorted(panels))}" for metric, panels in sorted(unproduced.items()))


def _health(stack: MonitoredStack) -> tuple[dict, float]:
    started = time.monotonic()
    body = httpx2.get(f"{stack.gateway.base_url}/health", timeout=5).json()
    return body, time.monotonic() - started


def _gauge(stack: MonitoredStack, check: str) -> float | None:
    text = httpx2.get(f"{stack.gateway.base_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("proxmox_mcp_probe_up{") and f'check="{check}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_health_names_the_failing_host_fast_and_gauges_drop(monitored: MonitoredStack) -> None:
    # Probe rounds that began before the workers were up can still be reported: start from both green.
    wait_until(lambda: all(_health(monitored)[0]["checks"][name]["status"] == "ok" for name in ("ssh", "api")),
               timeout=15, what="ssh and api ok")
    assert _gauge(monitored, "ssh") == 1.0

    monitored.sshd.stop()
    try:
        wait_until(lambda: _health(monitored)[0]["checks"]["ssh"]["status"] == "fail", timeout=20,
                   what="the ssh check to fail")
        body, seconds = _health(monitored)
        assert seconds < 1.0
        assert body["checks"]["ssh"]["last_error"], body
        assert body["checks"]["api"]["status"] == "ok", json.dumps(body["checks"]["api"])
        assert _gauge(monitored, "ssh") == 0.0
    finally:
        monitored.sshd.restart()
    wait_until(lambda: _health(monitored)[0]["checks"]["ssh"]["status"] == "ok", timeout=20, what="ssh back")

    sim_port = monitored.sim.api_port
    monitored.sim.proc.stop()
    wait_until(lambda: _health(monitored)[0]["checks"]["api"]["status"] == "fail", timeout=20,
               what="the api check to fail")
    body, seconds = _health(monitored)
    assert seconds < 1.0 and body["status"] != "ok"
    assert _gauge(monitored, "api") == 0.0
    assert str(sim_port) not in str(body["checks"]["api"]["last_error"])


def test_ready_reflects_the_loss_of_a_worker_kind(monitored: MonitoredStack) -> None:
    ready = httpx2.get(f"{monitored.gateway.base_url}/health/ready", timeout=5)
    assert ready.status_code == 200
    monitored.workers["ssh-worker"].stop()
    started = time.monotonic()
    ready = httpx2.get(f"{monitored.gateway.base_url}/health/ready", timeout=5)
    assert time.monotonic() - started < 2
    assert ready.status_code == 503 and ready.json()["checks"]["ssh-worker"] == "fail"
    monitored.workers["ssh-worker"] = start_worker(
        "ssh-worker", monitored.nats.url, monitored.config_path, monitored.workdir, name="ssh-worker-again")
    wait_ready(monitored.gateway)
