"""The README's Deployment, Monitoring and Troubleshooting sections cover what the repository ships."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support.metric_families import all_metric_families
from tests.support.readme import readme_section

REPO = Path(__file__).resolve().parents[3]


def test_every_alert_is_explained_in_monitoring() -> None:
    monitoring = readme_section("Monitoring")
    for path in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert f"`{rule['alert']}`" in monitoring, rule["alert"]


def test_every_metric_is_explained_in_monitoring() -> None:
    monitoring = readme_section("Monitoring")
    for family in all_metric_families():
        exported = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{exported}`" in monitoring, exported


def test_every_metric_the_monitoring_section_names_is_exported() -> None:
    exported = {family.name + ("_total" if family.type == "counter" else "") for family in all_metric_families()}
    named = set(re.findall(r"`(proxmox_mcp_[a-z0-9_]+)`", readme_section("Monitoring")))
    assert named, "the Monitoring section names no metric"
    assert not named - exported, f"the README names metrics no process exports: {sorted(named - exported)}"


def test_deployment_covers_compose_demo_systemd_and_a_real_domain() -> None:
    deployment = readme_section("Deployment")
    for needle in ("docker compose --profile demo up", "deploy/install.sh", "PMCP_DOMAIN=mcp.example.org",
                   "LoadCredential=", "compose.local-ports.yml", "proxmox-mcp keygen"):
        assert needle in deployment, needle


def test_troubleshooting_starts_with_the_doctor() -> None:
    troubleshooting = readme_section("Troubleshooting")
    assert troubleshooting.strip().startswith("Run the doctor first")
    assert "proxmox-mcp doctor" in troubleshooting
