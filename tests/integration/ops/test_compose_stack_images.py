"""The images on a real container engine (scripts/container-engine): every image of the compose file is built
from the repository (times and sizes in the log), and our image runs a service alone, as testcontainers starts
it, as the service user with a read-only root and no capabilities. In CI a missing engine fails these tests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import nats
import pytest
from testcontainers.core.container import DockerContainer

from tests.support.compose import compose_model
from tests.support.compose_stack import ComposeStack, build_table
from tests.support.containers import ENGINE_SCRIPT, OUR_IMAGE
from tests.support.procs import free_port, wait_until

# The first test of a session builds the images (minutes when cold) and starts the stack.
pytestmark = pytest.mark.timeout(900)


def test_every_image_the_demo_needs_is_built_here_and_reported_with_time_and_size(
    compose_stack: ComposeStack,
) -> None:
    table = build_table(compose_stack.log)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:-1]}
    wanted = {s["image"] for s in compose_model(profiles=["demo"])["services"].values()}
    for image in wanted - {"grafana/grafana:11.3.0"}:
        assert image in rows, f"{image} missing from the build report:\n{table}"
        _, how, seconds, size, unit = rows[image]
        assert how in ("pulled", "stand-in", "Dockerfile") and float(seconds) >= 0 and unit == "MB", table
        assert 1 <= float(size) < 1000, f"{image} is {size} MB"
    assert {"python:3.11-slim-bookworm", "ghcr.io/astral-sh/uv:0.13.9"} <= set(rows), table


def test_our_image_runs_nats_alone_read_only_as_the_service_user_without_capabilities(
    compose_stack: ComposeStack,
) -> None:
    port = free_port()
    container = (
        DockerContainer(OUR_IMAGE)
        .with_command(["nats-server", "--addr", "0.0.0.0", "--port", "4222"])
        .with_kwargs(read_only=True, cap_drop=["ALL"], init=True, security_opt=["no-new-privileges:true"])
    )
    # Published on loopback only (with_bind_ports binds every address); docker-py takes (address, port).
    ports: dict[str, Any] = container.ports
    ports["4222/tcp"] = ("127.0.0.1", port)
    with container:
        wrapped = container.get_wrapped_container()
        wait_until(lambda: b"Server is ready" in b"".join(container.get_logs()), timeout=30,
                   what="nats-server in the container", interval=0.2)
        assert container.exec(["id", "-u"]).output.strip() == b"10001"
        status = container.exec(["cat", "/proc/self/status"]).output.decode()
        assert re.search(r"^CapEff:\s+0+$", status, flags=re.M), status
        touched = container.exec(["touch", "/opt/proxmox-mcp/x"])
        assert touched.exit_code != 0 and b"Read-only file system" in touched.output
        wrapped.reload()
        assert wrapped.attrs["HostConfig"]["ReadonlyRootfs"] is True

        async def round_trip() -> bytes:
            client = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=5)
            try:
                sub = await client.subscribe("pmcp.test")
                await client.publish("pmcp.test", b"through the container")
                return (await sub.next_msg(timeout=5)).data
            finally:
                await client.close()

        assert asyncio.run(round_trip()) == b"through the container"


def test_the_image_carries_every_service_command_and_the_healthcheck(compose_stack: ComposeStack) -> None:
    for argv in (["proxmox-mcp", "--help"], ["nats-server", "--version"], ["pve-sim", "--help"],
                 ["python", "/opt/proxmox-mcp/healthcheck.py", "--help"]):
        result = subprocess.run(["docker", "run", "--rm", "--read-only", OUR_IMAGE, *argv], capture_output=True,
                                text=True, timeout=120, env=compose_stack.env, check=False)
        assert result.returncode == 0, (argv, result.stderr[-2000:])


def test_the_engine_script_prints_only_the_export_line_and_starts_nothing_twice(compose_stack: ComposeStack) -> None:
    state = Path("/run/proxmox-mcp-engine") if os.geteuid() == 0 else None
    runs = [subprocess.run([str(ENGINE_SCRIPT)], capture_output=True, text=True, timeout=120, check=True)
            for _ in range(2)]
    assert [r.stdout for r in runs] == [f"export DOCKER_HOST={compose_stack.env['DOCKER_HOST']}\n"] * 2
    if state is None or not (state / "service.pid").exists():
        return  # an engine that was already there (Docker): nothing of ours runs
    pids = {name: (state / f"{name}.pid").read_text().strip() for name in ("service", "healthchecks")}
    runners = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).count("podman-healthchecks")]
    assert [p.name for p in runners] == [pids["healthchecks"]]
    assert "system service" in _cmdline(Path("/proc") / pids["service"])
    # Started in /, not in the checkout that started them: the containers' conmon inherits the directory.
    assert [os.readlink(f"/proc/{pid}/cwd") for pid in pids.values()] == ["/", "/"]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
