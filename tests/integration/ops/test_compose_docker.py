"""With a Docker engine: the image builds and runs as non-root, and the demo stack comes up ready.
Without one (as on the CI machine) these tests skip with the reason; everything else is checked offline."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import REPO_ROOT


def docker_client() -> Any:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        pytest.skip("no Docker engine here (no DOCKER_HOST, no /var/run/docker.sock); compose and the Dockerfile "
                    "are validated offline by test_compose_file.py")
    import docker
    import docker.errors

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env()
            client.ping()
        except docker.errors.DockerException as exc:
            pytest.skip(f"no usable Docker engine: {exc}")
    return client


def test_the_image_builds_and_runs_every_service_binary_as_non_root() -> None:
    client = docker_client()
    image, _ = client.images.build(path=str(REPO_ROOT), tag="proxmox-mcp:pytest", rm=True)
    try:
        assert client.containers.run(image.id, ["id", "-u"], remove=True).strip() == b"10001"
        for argv in (["proxmox-mcp", "--help"], ["nats-server", "--version"], ["pve-sim", "--help"]):
            client.containers.run(image.id, argv, remove=True)
    finally:
        client.images.remove(image.id, force=True)


def test_the_demo_profile_comes_up_ready_with_workers_behind_caddy() -> None:
    docker_client()
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI with the compose plugin is needed to drive compose")
    from testcontainers.compose import DockerCompose

    with DockerCompose(REPO_ROOT, compose_file_name="docker-compose.yml", profiles=["demo"], build=True,
                       wait=True) as stack:
        check = ("import json, urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/health/ready', "
                 "timeout=5).read().decode())")
        stdout, _, code = stack.exec_in_container(["python", "-c", check], service_name="gateway")
        assert code == 0, stdout
        assert json.loads(stdout)["ready"] is True
        token, _, _ = stack.exec_in_container(["cat", "/run/proxmox-mcp/gateway/token"], service_name="gateway")
        assert len(token.strip()) >= 40
