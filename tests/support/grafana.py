"""The Grafana dashboard's queries, with Grafana's variables replaced so Prometheus can run them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import REPO_ROOT

GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
# What Grafana substitutes at query time; "All" of a multi-value variable is its allValue ".*".
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "${datasource}": "prometheus"}
PROMETHEUS_MADE = {"up", "ALERTS"}
"""Series Prometheus makes itself: `up` per scrape target, `ALERTS` per pending or firing alert."""
NON_OUR_METRICS = {*PROMETHEUS_MADE, "process_resident_memory_bytes", "process_cpu_seconds_total"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    """With Grafana's variables substituted."""


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def substitute(expr: str, variables: list[str]) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", ".*").replace("$" + name, ".*")
    return expr


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def dashboard_queries(path: Path) -> list[PanelQuery]:
    dashboard = load_dashboard(path)
    variables = [v["name"] for v in dashboard.get("templating", {}).get("list", [])]
    return [PanelQuery(dashboard=path.name, panel_id=int(panel["id"]), panel_title=panel["title"],
                       ref_id=target["refId"], expr=substitute(target["expr"], variables))
            for panel in panels(dashboard) for target in panel.get("targets", [])]


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, matchers, groupings and functions taken out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        if match.group(2) or match.group(1).lower() in _KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def source_metrics(expr: str, recording_rules: dict[str, str]) -> set[str]:
    """The metrics an expression reads, with each recording rule replaced by the metrics its own expression
    reads (what some process has to export for the query to show anything)."""
    found: set[str] = set()
    for name in metric_names_in(expr):
        found |= source_metrics(recording_rules[name], recording_rules) if name in recording_rules else {name}
    return found


def variable_metric_names(path: Path) -> set[str]:
    """The metrics the template variables' label_values(metric, label) queries read."""
    return {name for query in variable_queries(path)
            for name in metric_names_in(query.replace("label_values(", "(").split(",")[0] + ")")}


def variable_queries(path: Path) -> list[str]:
    """The label_values(metric, label) queries of the template variables."""
    dashboard = load_dashboard(path)
    out: list[str] = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            out.append(query["query"] if isinstance(query, dict) else str(query))
    return out
