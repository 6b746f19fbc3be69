"""Monitoring the real stack: Prometheus scrapes gateway and workers; health follows hosts going down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from tests.support.mcp_client import http_client
from tests.support.nats import NatsServer, start_nats
from tests.support.procs import Proc, free_port, wait_until
from tests.support.prometheus import scrape_config, start_prometheus
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, start_sim
from tests.support.sshd import SshdServer, start_sshd

FAST = {"PMCP_PROBE_INTERVAL": "0.3", "PMCP_PROBE_TIMEOUT": "1", "PMCP_HEARTBEAT_INTERVAL": "0.2",
        "PMCP_API_TIMEOUT": "3"}


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
