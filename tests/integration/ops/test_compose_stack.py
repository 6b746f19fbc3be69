"""The compose demo on a real container engine, started with the README's commands (one stack per session):
it comes up healthy, answers through Caddy over HTTPS to the official MCP client and Claude Code, runs as the
README says it does (service user, read-only root, no capabilities, secrets where they belong, only Caddy
published), and its Prometheus scrapes the gateway and every worker replica."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.integration.e2e.test_six_tools import exercise_six_tools
from tests.support.compose import compose_model
from tests.support.compose_stack import SERVICE_USER, ComposeStack, after_up_commands
from tests.support.mcp_client import SimClient, http_client
from tests.support.npm_tools import npm_install
from tests.support.procs import wait_until

# The first test of a session builds the images (minutes when cold) and starts the stack.
pytestmark = pytest.mark.timeout(900)

LONG_RUNNING = ("nats", "gateway", "ssh-worker", "api-worker", "pve-sim")
HEALTHCHECKED = ("nats", "gateway", "ssh-worker", "api-worker", "pve-sim", "prometheus")
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "NET_BIND_SERVICE": 10}


def _service(container: dict[str, Any]) -> str:
    return str(container["Config"]["Labels"]["com.docker.compose.service"])


def _caps(status: str, field: str = "CapEff") -> int:
    """A capability set of /proc/PID/status (CapEff: what the process holds; CapBnd: all it could ever gain)."""
    match = re.search(rf"^{field}:\s+([0-9a-f]+)$", status, flags=re.M)
    assert match, status
    return int(match.group(1), 16)


def test_every_service_with_a_healthcheck_reports_healthy(compose_stack: ComposeStack) -> None:
    containers = compose_stack.containers()
    services = {_service(c) for c in containers}
    assert services == {*HEALTHCHECKED, "caddy"}, services  # everything but grafana (and the one-shot config)
    for container in containers:
        if _service(container) in HEALTHCHECKED:
            assert container["State"]["Health"]["Status"] == "healthy", container["Name"]
    config = compose_stack.containers("config", all_states=True)
    assert config and config[0]["State"]["ExitCode"] == 0


def test_caddy_answers_health_over_https_with_its_local_ca(compose_stack: ComposeStack) -> None:
    response = httpx2.get(compose_stack.url("/health"), verify=compose_stack.tls(), timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert httpx2.get(compose_stack.url("/metrics"), verify=compose_stack.tls(), timeout=10).status_code == 404
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(compose_stack.url("/health"), timeout=10)  # the system's trust store does not know Caddy's CA


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_official_mcp_client_calls_the_six_tools_through_caddy(compose_stack: ComposeStack,
                                                                         mode: str) -> None:
    with SimClient(compose_stack.sim) as sim:
        async with http_client(compose_stack.url("/mcp"), compose_stack.token, mode=mode,
                               verify=compose_stack.tls()) as client:
            await exercise_six_tools(client, sim)


@pytest.mark.npm
def test_claude_code_added_as_the_readme_says_lists_the_stack_as_connected(compose_stack: ComposeStack,
                                                                           tmp_path: Path) -> None:
    prefix = npm_install(["@anthropic-ai/claude-code"], "claude-code")
    lines = [compose_stack.localize(line) for line in after_up_commands() if line.startswith(("claude", "NODE_"))]
    assert [line.split()[:3] for line in lines] == [["claude", "mcp", "add"],
                                                    ["NODE_EXTRA_CA_CERTS=$PWD/caddy-root.crt", "claude", "mcp"]]
    env = {**os.environ, "HOME": str(tmp_path), "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_TELEMETRY": "1",
           "DISABLE_TELEMETRY": "1", "CI": "1", "TOKEN": compose_stack.token,
           "PATH": f"{prefix / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("NODE_EXTRA_CA_CERTS", None)  # only what the README line sets
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=240, env=env,
                            cwd=compose_stack.workdir, check=False)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("proxmox")), "")
    assert result.returncode == 0 and "Connected" in line, result.stdout + result.stderr


def test_long_running_services_run_as_the_service_user_read_only_without_capabilities(
    compose_stack: ComposeStack,
) -> None:
    for service in LONG_RUNNING:
        for index, container in enumerate(compose_stack.containers(service), start=1):
            host = container["HostConfig"]
            assert host["ReadonlyRootfs"] is True, container["Name"]
            assert not host.get("CapAdd"), container["Name"]
            assert compose_stack.exec(service, "id", "-u", index=index).strip() == SERVICE_USER
            status = compose_stack.exec(service, "cat", "/proc/1/status", index=index)
            assert (_caps(status), _caps(status, "CapBnd")) == (0, 0), (container["Name"], status)
            assert re.search(r"^NoNewPrivs:\s+1$", status, flags=re.M), container["Name"]
            denied = compose_stack.compose("exec", "-T", "--index", str(index), service, "touch", "/opt/x",
                                           check=False)
            assert denied.returncode != 0 and "Read-only file system" in denied.stdout + denied.stderr


def test_the_config_step_and_caddy_hold_only_the_capabilities_compose_grants(compose_stack: ComposeStack) -> None:
    caddy = compose_stack.exec("caddy", "cat", "/proc/1/status")
    assert _caps(caddy) == _caps(caddy, "CapBnd") == 1 << CAP_BITS["NET_BIND_SERVICE"]
    # The one-shot step has exited: run its image with its service definition and read what it holds.
    config = compose_stack.compose("--profile", "demo", "run", "--rm", "--no-deps", "-T", "config", "cat",
                                   "/proc/self/status").stdout
    granted_bits = sum(1 << CAP_BITS[c] for c in ("CHOWN", "DAC_OVERRIDE", "FOWNER"))
    assert _caps(config) == _caps(config, "CapBnd") == granted_bits
    assert re.search(r"^Uid:\s+0\s", config, flags=re.M)
    granted = compose_model(profiles=["demo"])["services"]
    assert sorted(granted["config"]["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert granted["caddy"]["cap_add"] == ["NET_BIND_SERVICE"]


def test_the_gateway_container_holds_no_proxmox_credential_or_ssh_key(compose_stack: ComposeStack) -> None:
    secrets = [compose_stack.sim["admin_token"]["secret"], compose_stack.sim["readonly_token"]["secret"],
               compose_stack.sim["root_password"]]
    environment = compose_stack.exec("gateway", "env")
    assert not re.search(r"^(PROXMOX_|SSH_|PMCP_CONFIG=)", environment, flags=re.M), environment
    assert not any(secret in environment for secret in secrets)
    # Every file the service user can read, outside the image's own software, holds none of them.
    search = "\n".join([
        "import os, sys",
        "hits = []",
        "for top in ('/run', '/var/lib/proxmox-mcp', '/tmp', '/data', '/etc'):",
        "    for root, _, files in os.walk(top):",
        "        for name in files:",
        "            path = os.path.join(root, name)",
        "            try: text = open(path, 'rb').read(1 << 20)",
        "            except OSError: continue",
        "            secret = any(s.encode() in text for s in sys.argv[1:])",
        "            if secret or b'PRIVATE KEY' in text or name in ('clusters.toml', 'id_ed25519'):",
        "                hits.append(path)",
        "print(hits)",
    ])
    assert compose_stack.exec("gateway", "python", "-c", search, *secrets).strip() == "[]"


def test_worker_secret_files_are_0600_and_owned_by_the_service_user(compose_stack: ComposeStack) -> None:
    listing = compose_stack.exec("ssh-worker", "find", "/run/proxmox-mcp/worker", "-type", "f", "-printf",
                                 r"%m %U:%G %p\n")
    files = [line.split(" ", 2) for line in listing.strip().splitlines()]
    names = {Path(path).name for _, _, path in files}
    assert {"clusters.toml", "ssh_key_path"} <= names, listing
    for mode, owner, path in files:
        assert (mode, owner) == ("600", f"{SERVICE_USER}:{SERVICE_USER}"), path
    token = compose_stack.exec("gateway", "stat", "-c", "%a %u:%g", "/run/proxmox-mcp/gateway/token").strip()
    assert token == f"600 {SERVICE_USER}:{SERVICE_USER}"


def test_only_caddy_publishes_ports_and_what_the_overrides_add_is_on_loopback(compose_stack: ComposeStack) -> None:
    published = {_service(c): [b for bindings in (c["HostConfig"].get("PortBindings") or {}).values()
                               for b in bindings or []]
                 for c in compose_stack.containers()}
    published = {service: bindings for service, bindings in published.items() if bindings}
    # prometheus: the README's local-ports override; pve-sim: the tests' own override (ground truth).
    assert set(published) == {"caddy", "prometheus", "pve-sim"}, published
    for service, bindings in published.items():
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings), (service, bindings)
    main_file = {name for name, s in compose_model(profiles=["demo"])["services"].items() if s.get("ports")}
    assert main_file == {"caddy"}


def _targets(stack: ComposeStack) -> list[dict[str, Any]]:
    body = httpx2.get(f"{stack.prometheus_url}/api/v1/targets", timeout=10).json()
    return list(body["data"]["activeTargets"])


def _up(stack: ComposeStack, job: str) -> set[str]:
    return {t["labels"]["instance"] for t in _targets(stack) if t["labels"]["job"] == job and t["health"] == "up"}


def test_prometheus_scrapes_every_replica_and_a_burst_is_served_by_several(compose_stack: ComposeStack) -> None:
    wait_until(lambda: bool(_up(compose_stack, "proxmox-mcp-gateway")) and bool(
        _up(compose_stack, "proxmox-mcp-api-worker")), timeout=60, what="gateway and api-worker targets up",
        interval=1)
    # The README's podman note: add replicas without recreating what runs.
    compose_stack.compose("--profile", "demo", "up", "-d", "--no-recreate", "--scale", "ssh-worker=3", "ssh-worker")
    compose_stack.wait_healthy(timeout=120)
    addresses = {network["IPAddress"] for c in compose_stack.containers("ssh-worker")
                 for network in c["NetworkSettings"]["Networks"].values()}
    wait_until(lambda: len(_up(compose_stack, "proxmox-mcp-ssh-worker")) == 3, timeout=90, interval=1,
               what=f"three ssh-worker targets up (now {_up(compose_stack, 'proxmox-mcp-ssh-worker')})")
    assert {i.split(":")[0] for i in _up(compose_stack, "proxmox-mcp-ssh-worker")} <= addresses
    wait_until(lambda: int(json.loads(compose_stack.exec("gateway", "python", "-c",
               "import json, urllib.request as u; print(json.dumps(json.load(u.urlopen("
               "'http://127.0.0.1:8080/health'))['checks']['ssh-worker']['instances']))"))) == 3,
               timeout=60, what="the gateway to see three ssh-workers", interval=1)

    async def burst() -> None:
        async with httpx2.AsyncClient(verify=compose_stack.tls(), timeout=60,
                                      headers={"Authorization": f"Bearer {compose_stack.token}"}) as client:
            async def call(i: int) -> None:
                response = await client.post(compose_stack.url("/api/mcp/tools/call"), json={
                    "name": "execute_command", "arguments": {"command": f"echo {i}", "node": "pve1"}})
                assert response.status_code == 200 and response.json()["isError"] is False, response.text
            for start in range(0, 60, 12):
                await asyncio.gather(*(call(i) for i in range(start, start + 12)))

    before = _exec_counts(compose_stack)
    asyncio.run(burst())
    after = _exec_counts(compose_stack)
    served = {address: after[address] - before.get(address, 0.0) for address in after}
    assert sum(served.values()) == 60, served
    assert len([n for n in served.values() if n > 0]) >= 2, served
    # Prometheus holds the same per-replica counters.
    query = 'sum by (instance) (proxmox_mcp_worker_requests_total{job="proxmox-mcp-ssh-worker", op="exec"})'
    wait_until(lambda: {s["metric"]["instance"].split(":")[0]: float(s["value"][1])
                        for s in compose_stack.prometheus(query)} == after, timeout=60, interval=1,
               what=f"Prometheus to scrape the burst ({after})")


def _exec_counts(stack: ComposeStack) -> dict[str, float]:
    """exec requests each ssh-worker replica served, read from its own /metrics, by its monitoring address."""
    pattern = r'^proxmox_mcp_worker_requests_total\{[^}]*op="exec"[^}]*\} (\S+)$'
    read = "\n".join([
        "import re, sys, urllib.request as u",
        "text = u.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode()",
        "print(sum(float(m) for m in re.findall(sys.argv[1], text, flags=re.M)))",
    ])
    counts: dict[str, float] = {}
    for index, container in enumerate(stack.containers("ssh-worker"), start=1):
        networks = container["NetworkSettings"]["Networks"]
        address = next(n["IPAddress"] for name, n in networks.items() if name.endswith("_monitoring"))
        counts[address] = float(stack.exec("ssh-worker", "python", "-c", read, pattern, index=index).strip())
    return counts


def test_the_commands_the_readme_gives_for_podman_are_the_ones_this_session_ran(compose_stack: ComposeStack) -> None:
    script = (compose_stack.workdir / "readme-commands.sh").read_text()
    for line in ('eval "$(scripts/container-engine)"', "scripts/build-images",
                 "docker compose --profile demo up -d nats gateway ssh-worker api-worker caddy prometheus",
                 "TOKEN=$(docker compose exec -T gateway cat /run/proxmox-mcp/gateway/token)",
                 "docker compose cp caddy:/data/caddy/pki/authorities/local/root.crt ./caddy-root.crt"):
        assert line in script.splitlines(), line
    assert shlex.split(compose_stack.localize("curl --cacert caddy-root.crt https://localhost/health"))[-1] \
        in script
