"""Real Prometheus scrapes a process exporting our metrics through the shared helpers, loads our alert rules,
and runs every dashboard query. (The lead's stack test scrapes the real gateway and workers.)"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.support.grafana import DASHBOARDS, dashboard_queries
from tests.support.procs import Proc, free_port, start_process, wait_until
from tests.support.prometheus import RULE_FILES, PrometheusServer, scrape_config, start_prometheus


@dataclass
class Scraped:
    prometheus: PrometheusServer
    exporter: Proc


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    exporter = start_process("exporter", [sys.executable, "-m", "tests.support.metrics_exporter"], workdir,
                             env={"PMCP_METRICS_PORT": str(port)}, cwd=Path(__file__).resolve().parents[3])
    prometheus: PrometheusServer | None = None
    try:
        wait_until(lambda: _answers(port), timeout=20, what="the exporter's /metrics", proc=exporter)
        config = scrape_config({"proxmox-mcp-gateway": [f"127.0.0.1:{port}"]}, rule_files=RULE_FILES)
        prometheus = start_prometheus(workdir, config)
        prometheus.wait_for('proxmox_mcp_tool_calls_total{tool="list_vms"}', timeout=30)
        yield Scraped(prometheus=prometheus, exporter=exporter)
    finally:
        if prometheus is not None:
            prometheus.proc.stop()
        exporter.stop()


def _answers(port: int) -> bool:
    try:
        return httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx2.HTTPError:
        return False


def _value(prometheus: PrometheusServer, expr: str) -> float:
    result = prometheus.vector(expr)
    return float(result[0]["value"][1]) if result else 0.0


def test_tool_counters_arrive_with_tool_and_code_labels(scraped: Scraped) -> None:
    series = scraped.prometheus.vector("proxmox_mcp_tool_calls_total")
    labels = {(s["metric"]["tool"], s["metric"]["code"]): float(s["value"][1]) for s in series}
    assert labels[("list_vms", "ok")] == 20
    assert labels[("execute_command", "policy_denied")] == 1
    assert labels[("vm_action", "unavailable")] == 1
    assert all(s["metric"]["job"] == "proxmox-mcp-gateway" for s in series)


def test_latency_histograms_arrive_with_their_buckets(scraped: Scraped) -> None:
    fast = _value(scraped.prometheus, 'proxmox_mcp_tool_call_duration_seconds_bucket{tool="list_vms", le="0.1"}')
    slow = _value(scraped.prometheus, 'proxmox_mcp_tool_call_duration_seconds_bucket{tool="execute_command", le="5"}')
    assert fast == 20 and slow == 0
    assert _value(scraped.prometheus, 'proxmox_mcp_tool_call_duration_seconds_count{tool="execute_command"}') == 5


def test_failures_move_the_error_counter(scraped: Scraped) -> None:
    expr = 'proxmox_mcp_tool_calls_total{tool="list_vms", code="internal"}'
    before = _value(scraped.prometheus, expr)
    scraped.exporter.popen.send_signal(signal.SIGUSR1)
    wait_until(lambda: _value(scraped.prometheus, expr) >= before + 3, timeout=20,
               what="the new failures to be scraped", proc=scraped.prometheus.proc, interval=0.25)


def test_our_alert_rules_load_and_evaluate_on_the_scraped_data(scraped: Scraped) -> None:
    def groups() -> list[dict[str, object]]:
        body = httpx2.get(f"{scraped.prometheus.url}/api/v1/rules", timeout=5).json()
        return list(body["data"]["groups"])

    names = {g["name"] for g in groups()}
    assert {"proxmox-mcp-sli", "proxmox-mcp-availability", "proxmox-mcp-slo"} <= names

    def ssh_alert_pending() -> bool:
        alerts = httpx2.get(f"{scraped.prometheus.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return any(a["labels"]["alertname"] == "ProxmoxMcpSshUnreachable" for a in alerts)

    wait_until(ssh_alert_pending, timeout=20, what="the failing SSH probe to raise its alert",
               proc=scraped.prometheus.proc, interval=0.25)
    for group in groups():
        for rule in group["rules"]:  # type: ignore[union-attr]
            assert rule.get("lastError", "") == "", rule


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: Path(p).name)
def test_every_dashboard_query_runs_on_real_prometheus(scraped: Scraped, dashboard: Path) -> None:
    empty = []
    for query in dashboard_queries(dashboard):
        body = scraped.prometheus.query(query.expr)
        assert body["status"] == "success", (query.panel_title, query.expr, body)
        if not body["data"]["result"]:
            empty.append(query.panel_title)
    # Recording rules (30 s interval) and rate() over a fresh series may still be empty; raw metrics are not.
    assert len(empty) <= len(dashboard_queries(dashboard)) // 2, empty
