"""`docker compose --profile demo up`, without Docker: every service of ours runs natively with the exact argv
and environment compose gives it (hosts -> 127.0.0.1, ports -> free ports, volumes -> temp dirs), in compose's
dependency order, each gated by its own healthcheck; then the stack answers a real tool call."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.support.compose import (
    NativeService,
    NativeStack,
    compose_model,
    container_ports,
    native_service,
    run_healthcheck,
)
from tests.support.procs import Proc, start_process, wait_until

ORDER = ("nats", "pve-sim", "config", "gateway", "ssh-worker", "api-worker")
LONG_RUNNING = ("nats", "pve-sim", "gateway", "ssh-worker", "api-worker")


@dataclass
class NativeDemo:
    stack: NativeStack
    services: dict[str, NativeService]
    procs: dict[str, Proc]
    config_output: str

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.ports[8080]}"

    @property
    def token(self) -> str:
        return (self.stack.volume_dir("gateway-secrets") / "token").read_text().strip()


def _depends_on(model: dict[str, Any], name: str) -> set[str]:
    return set(model["services"][name].get("depends_on") or {})


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeDemo]:
    model = compose_model(["demo"])
    root = tmp_path_factory.mktemp("compose-native")
    stack = NativeStack(root, sim_running=True)
    for port in sorted(container_ports(model)):
        stack.port(port)
    source = root / "operator-config"
    source.mkdir()
    services = {name: native_service(model, name, stack, {"/config": source}) for name in ORDER}
    procs: dict[str, Proc] = {}
    config_output = ""
    done: set[str] = set()
    try:
        for name in ORDER:
            assert _depends_on(model, name) & set(ORDER) <= set(procs) | done, f"{name} would start too early"
            service = services[name]
            if name == "config":
                result = subprocess.run(service.argv, capture_output=True, text=True, timeout=120, check=False,
                                        env={**_clean_env(), **service.env})
                assert result.returncode == 0, result.stdout + result.stderr
                config_output = result.stdout
                done.add(name)
                continue
            proc = start_process(name, service.argv, root / "logs", env=service.env)
            procs[name] = proc
            wait_until(lambda s=service: run_healthcheck(s), timeout=60, what=f"{name}'s compose healthcheck",
                       proc=proc, interval=0.2)
        yield NativeDemo(stack=stack, services=services, procs=procs, config_output=config_output)
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "PROXMOX_", "PMCP_", "NATS_URL"))}


def test_every_long_running_service_passes_its_healthcheck(demo: NativeDemo) -> None:
    for name in LONG_RUNNING:
        assert demo.procs[name].alive(), demo.procs[name].log_text()[-2000:]
        assert run_healthcheck(demo.services[name]), name


def test_the_config_step_pointed_the_workers_at_the_simulator(demo: NativeDemo) -> None:
    assert "demo, pointing at pve-sim" in demo.config_output
    assert "generated" in demo.config_output
    assert demo.token not in demo.config_output


def test_the_gateway_becomes_ready_with_both_workers(demo: NativeDemo) -> None:
    def ready() -> bool:
        try:
            return httpx2.get(f"{demo.gateway_url}/health/ready", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    wait_until(ready, timeout=30, what="/health/ready", proc=demo.procs["gateway"], interval=0.2)


def test_a_tool_call_goes_through_the_whole_stack(demo: NativeDemo) -> None:
    test_the_gateway_becomes_ready_with_both_workers(demo)
    response = httpx2.post(f"{demo.gateway_url}/api/mcp/tools/call", timeout=30,
                           headers={"Authorization": f"Bearer {demo.token}"},
                           json={"name": "list_vms", "arguments": {}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["isError"] is False
    assert body["structuredContent"]["vms"]


def test_the_worker_metrics_endpoints_are_what_prometheus_scrapes(demo: NativeDemo) -> None:
    for name, port in (("ssh-worker", 9464), ("api-worker", 9465)):
        text = httpx2.get(f"http://127.0.0.1:{demo.stack.ports[port]}/metrics", timeout=5).text
        assert "proxmox_mcp_build_info" in text, name


def test_the_gateway_serves_metrics_for_prometheus(demo: NativeDemo) -> None:
    assert "proxmox_mcp_tool_calls_total" in httpx2.get(f"{demo.gateway_url}/metrics", timeout=5).text


def test_workers_stop_cleanly_within_the_compose_grace_period(demo: NativeDemo) -> None:
    for name in ("api-worker", "ssh-worker"):
        code = demo.procs[name].stop(timeout=40)
        assert code == 0, demo.procs[name].log_text()[-2000:]
