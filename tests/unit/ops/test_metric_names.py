"""Every metric of every process follows the naming conventions, and each process exports only its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families
from proxmox_mcp_runtime.metrics.registry import ALLOWED_LABELS, LATENCY_BUCKETS, labelled_metrics
from proxmox_mcp_runtime.metrics.serve import render_latest

from tests.support.metric_families import all_metric_families, all_metric_names

NAME = re.compile(r"^proxmox_mcp_[a-z][a-z0-9_]*[a-z0-9]$")
FORBIDDEN_LABELS = {"host", "hostname", "address", "vmid", "command", "node", "token", "token_id", "user", "path"}
UNIT_WORDS = ("duration", "latency", "timestamp", "expiry", "processing")


def test_every_family_has_the_prefix_and_a_help_text() -> None:
    families = all_metric_families()
    assert len(families) >= 30
    for family in families:
        assert NAME.match(family.name), family.name
        assert family.documentation.strip(), f"{family.name} has no HELP text"


def test_counters_are_exposed_with_total_and_nothing_else_is() -> None:
    families = all_metric_families()
    for family in families:
        if family.type == "counter":
            assert not family.name.endswith("_total"), "prometheus-client appends _total itself"
        else:
            assert not family.name.endswith("_total"), f"{family.name} is a {family.type} named like a counter"
    counters = {f.name for f in families if f.type == "counter"}
    assert {f"{name}_total" for name in counters} <= set(all_metric_names())


def test_time_metrics_use_seconds_as_their_base_unit() -> None:
    for name in (f.name for f in all_metric_families()):
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kilobytes|megabytes)(_|$)", name), name
        if any(word in name for word in UNIT_WORDS):
            assert name.endswith("_seconds"), f"{name} measures time but does not end in _seconds"


def test_labels_come_from_the_low_cardinality_vocabulary() -> None:
    all_metric_families()
    for metric in labelled_metrics():
        labels = set(metric._labelnames)
        assert labels <= ALLOWED_LABELS, (metric._name, labels - ALLOWED_LABELS)
        assert not labels & FORBIDDEN_LABELS, metric._name


def test_latency_buckets_hold_the_alert_thresholds() -> None:
    for bound in (1.0, 3.0, 5.0):
        assert bound in LATENCY_BUCKETS


def test_exposition_parses_and_only_holds_conventional_names() -> None:
    all_metric_families()
    body, content_type = render_latest()
    assert content_type.startswith("text/plain")
    ours = [f for f in text_string_to_metric_families(body.decode()) if f.name.startswith("proxmox_mcp")]
    assert ours
    for family in ours:
        assert NAME.match(family.name), family.name


def _families_of(module: str) -> set[str]:
    probe = (f"import json, proxmox_mcp_cli.main, {module}; "
             "from proxmox_mcp_runtime.metrics.registry import metric_families; "
             "print(json.dumps(sorted(f.name for f in metric_families())))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout))


def test_a_worker_exports_its_own_families_and_none_of_the_gateways() -> None:
    ssh = _families_of("proxmox_mcp_ssh_worker.service")
    api = _families_of("proxmox_mcp_api_worker.service")
    for families in (ssh, api):
        assert {"proxmox_mcp_worker_requests", "proxmox_mcp_build_info", "proxmox_mcp_nats_connected"} <= families
        assert not {"proxmox_mcp_tool_calls", "proxmox_mcp_probe_up", "proxmox_mcp_http_requests"} & families
    assert "proxmox_mcp_ssh_commands" in ssh
    assert "proxmox_mcp_api_requests" in api and "proxmox_mcp_api_requests" not in ssh
