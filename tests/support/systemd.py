"""deploy/install.sh in a scratch root, systemd-analyze on the result, and unit files read as data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import REPO_ROOT, find_binary, missing_prerequisite

INSTALL_SH = REPO_ROOT / "deploy" / "install.sh"
UNIT_SOURCE = REPO_ROOT / "deploy" / "systemd"
SERVICES = ("proxmox-mcp-nats.service", "proxmox-mcp-gateway.service", "proxmox-mcp-ssh-worker.service",
            "proxmox-mcp-api-worker.service")
HOST_UNITS = Path("/usr/lib/systemd/system")


@dataclass
class ScratchInstall:
    root: Path
    result: subprocess.CompletedProcess[str]

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "proxmox-mcp"

    @property
    def credentials(self) -> Path:
        return self.etc / "credentials"

    @property
    def venv_bin(self) -> Path:
        return self.root / "opt" / "proxmox-mcp" / "venv" / "bin"

    @property
    def unit_dir(self) -> Path:
        return self.root / "etc" / "systemd" / "system"

    def ids(self) -> tuple[int, int]:
        passwd = (self.root / "etc" / "passwd").read_text()
        group = (self.root / "etc" / "group").read_text()
        uid = re.search(r"^proxmox-mcp:[^:]*:(\d+):", passwd, flags=re.M)
        gid = re.search(r"^proxmox-mcp:[^:]*:(\d+):", group, flags=re.M)
        assert uid and gid, "proxmox-mcp is not in the scratch root's passwd/group"
        return int(uid.group(1)), int(gid.group(1))


def run_install(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    return subprocess.run(["bash", str(INSTALL_SH), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, env=env, check=False)


def install_into(root: Path, *args: str) -> ScratchInstall:
    if os.geteuid() != 0:
        missing_prerequisite("the scratch-root install sets owners; it needs root (CI runs as root)")
    find_binary("systemd-sysusers")
    result = run_install("--root", str(root), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return ScratchInstall(root=root, result=result)


def add_host_units(root: Path) -> None:
    """systemd-analyze --root resolves sysinit.target & co. inside the root: give it the host's."""
    target = root / "usr" / "lib" / "systemd" / "system"
    if not target.exists():
        shutil.copytree(HOST_UNITS, target, symlinks=True)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = find_binary("systemd-analyze")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Key -> values of a unit file, all sections together (repeated keys accumulate)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def unit_environment(path: Path, credentials_dir: Path) -> dict[str, str]:
    """The Environment= assignments of a unit, with %d (the credentials directory) substituted."""
    env: dict[str, str] = {}
    for line in unit_settings(path).get("Environment", []):
        for assignment in line.split():
            key, _, value = assignment.partition("=")
            env[key] = value.replace("%d", str(credentials_dir))
    return env


def unit_credentials(path: Path) -> dict[str, Path]:
    """LoadCredential=ID:PATH entries of a unit."""
    creds: dict[str, Path] = {}
    for value in unit_settings(path).get("LoadCredential", []):
        name, _, source = value.partition(":")
        creds[name] = Path(source)
    return creds
