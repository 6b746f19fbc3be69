"""A real container engine for the tests: scripts/container-engine makes one available (podman's Docker API
where no Docker runs), scripts/build-images builds every image. Without an engine the tests skip with the
reason, except in CI (PMCP_REQUIRE_BINARIES=1), where a missing engine is a failure."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import pytest

from tests.support.procs import REPO_ROOT

ENGINE_SCRIPT = REPO_ROOT / "scripts" / "container-engine"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images"
OUR_IMAGE = "proxmox-mcp:local"


def engine_missing(message: str) -> None:
    if os.environ.get("PMCP_REQUIRE_BINARIES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def container_engine() -> str:
    """DOCKER_HOST of a working engine, exported to this process (docker-py, testcontainers, compose)."""
    try:
        result = subprocess.run([str(ENGINE_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        engine_missing(f"scripts/container-engine failed: {exc}")
        raise
    line = result.stdout.strip()
    if result.returncode != 0 or not line.startswith("export DOCKER_HOST="):
        engine_missing(f"no container engine (scripts/container-engine exited {result.returncode}): "
                       f"{result.stderr.strip()[-1500:]}")
    host = line.removeprefix("export DOCKER_HOST=")
    os.environ["DOCKER_HOST"] = host
    # testcontainers' reaper image (ryuk) cannot be pulled offline; every test removes what it starts.
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    return host


@dataclass(frozen=True)
class ImageBuild:
    seconds: float
    report: str
    """scripts/build-images' table: per image how it was made, seconds and size."""


def build_images(command: str = str(BUILD_SCRIPT)) -> ImageBuild:
    """Run the build (the README's line for it); fail with its output when an image cannot be made."""
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=1500, cwd=REPO_ROOT,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"{command} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return ImageBuild(seconds=time.monotonic() - started, report=result.stderr)
