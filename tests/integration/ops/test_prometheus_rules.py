"""deploy/prometheus passes promtool, every alert has a unit test, and the rules read only real metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.metric_families import all_metric_names
from tests.support.prometheus import (
    PROMETHEUS_DIR,
    RULE_FILES,
    alert_rules,
    promtool,
    recording_rule_names,
    referenced_metrics,
    rule_documents,
)

RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))


def test_the_compose_prometheus_config_passes_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_the_rule_files_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: Path(p).name)
def test_the_alert_unit_tests_pass(test_file: Path) -> None:
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert len(alerts) >= 14
    assert alerts - fired == set(), "alerts without a test that fires them"
    assert alerts - quiet == set(), "alerts without a test that shows them quiet"


def test_alerts_carry_severity_summary_and_runbook() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert rule["annotations"]["runbook"].startswith("README.md#"), rule["alert"]


def test_rules_only_read_metrics_that_the_services_export() -> None:
    known = set(all_metric_names()) | recording_rule_names()
    for doc in rule_documents():
        for group in doc["groups"]:
            for rule in group["rules"]:
                unknown = referenced_metrics(rule["expr"]) - known
                assert not unknown, f"{rule.get('alert') or rule.get('record')} reads unknown metrics {unknown}"


def test_the_checklist_targets_are_the_thresholds() -> None:
    by_name = {rule["alert"]: " ".join(rule["expr"].split()) for rule in alert_rules()}
    assert by_name["ProxmoxMcpCommandLatencyHigh"].endswith("> 5")
    assert by_name["ProxmoxMcpApiLatencyHigh"].endswith("> 3")
    assert by_name["ProxmoxMcpHealthLatencyHigh"].endswith("> 1")
    assert "> 0.05" in by_name["ProxmoxMcpToolErrorRatioHigh"]
    assert "[10m]" in by_name["ProxmoxMcpToolErrorRatioHigh"]
    slo = by_name["ProxmoxMcpErrorBudgetBurnFast"] + by_name["ProxmoxMcpErrorBudgetBurnSlow"]
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"ratio_rate{window}" in slo
