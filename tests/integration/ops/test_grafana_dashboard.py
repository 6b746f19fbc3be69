"""The Grafana dashboard and provisioning load, and every panel query is valid PromQL over real metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.grafana import (
    DASHBOARDS,
    GRAFANA_DIR,
    NON_OUR_METRICS,
    dashboard_queries,
    load_dashboard,
    metric_names_in,
    panels,
    variable_metric_names,
)
from tests.support.metric_families import all_metric_names
from tests.support.prometheus import promtool, recording_rule_names

DASHBOARD = GRAFANA_DIR / "dashboards" / "proxmox-mcp.json"


def test_the_dashboard_loads_with_unique_panel_ids_on_the_24_column_grid() -> None:
    dashboard = load_dashboard(DASHBOARD)
    assert dashboard["uid"] == "proxmox-mcp"
    assert dashboard["title"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


def test_the_dashboard_covers_overview_tools_ssh_api_and_workers() -> None:
    dashboard = load_dashboard(DASHBOARD)
    rows = [p["title"] for p in panels(dashboard) if p["type"] == "row"]
    assert rows == ["Overview", "Tools", "SSH and Proxmox API", "Workers and NATS"]
    used = set().union(*(metric_names_in(q.expr) for q in dashboard_queries(DASHBOARD)))
    for needed in ("proxmox_mcp_tool_calls_total", "proxmox_mcp_tool_call_duration_seconds_bucket",
                   "proxmox_mcp_probe_up", "proxmox_mcp_ssh_pool_connections", "proxmox_mcp_api_requests_total",
                   "proxmox_mcp_worker_instances", "proxmox_mcp_worker_requests_total"):
        assert needed in used


def test_every_panel_queries_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = load_dashboard(DASHBOARD)
    assert dashboard["templating"]["list"][0]["current"]["value"] == uid
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]


def test_the_dashboard_provider_points_at_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "proxmox-mcp.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = (GRAFANA_DIR.parents[1] / "docker-compose.yml").read_text()
    assert f"./deploy/grafana/dashboards:{path}:ro" in compose


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: Path(p).name)
def test_every_panel_query_only_reads_metrics_the_services_export(dashboard: Path) -> None:
    known = set(all_metric_names()) | recording_rule_names() | NON_OUR_METRICS
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 30
    for query in queries:
        unknown = metric_names_in(query.expr) - known
        assert not unknown, f"panel {query.panel_title!r} ({query.ref_id}) reads unknown metrics {unknown}"
    assert variable_metric_names(dashboard) <= known


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: Path(p).name)
def test_every_panel_query_is_valid_promql(dashboard: Path, tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:panel_{q.panel_id}_{q.ref_id}", "expr": q.expr}
             for q in dashboard_queries(dashboard)]
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
