"""canvrno/ProxmoxMCP, the server peer_bench compares us with: its own venv (built from a checkout once and cached
by the checkout's content), its JSON config pointing at our simulator, and how to start it over stdio.

Nothing of the peer lives in this repository: the bench is given the path of a checkout and builds from it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.support.services import write_private

PEER_MCP = "mcp<2"
"""Its pyproject asks for the SDK's git head and imports `mcp.server.fastmcp`, which the 2.x line removed."""

READY_MARK = ".peer-bench-ready"


def default_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "proxmox-mcp-bench"


def peer_requirements(checkout: Path) -> list[str]:
    """The checkout's own dependencies (pyproject [project].dependencies), its `mcp` replaced by PEER_MCP."""
    project = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]
    requirements = []
    for requirement in project["dependencies"]:
        name = re.split(r"[\s<>=!~;\[@]", requirement, maxsplit=1)[0].lower()
        requirements.append(PEER_MCP if name == "mcp" else requirement)
    return requirements


def checkout_digest(checkout: Path, requirements: list[str]) -> str:
    """Changes when the peer's code, its packaging, the requirements or our Python change."""
    digest = hashlib.sha256("\n".join([sys.version, *requirements]).encode())
    files = [checkout / "pyproject.toml", checkout / "setup.py", *sorted((checkout / "src").rglob("*.py"))]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(checkout)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_peer_venv(checkout: Path, cache_root: Path) -> tuple[Path, str]:
    """(the venv's python, its mcp version); builds the venv unless this checkout's is already complete."""
    if not (checkout / "src" / "proxmox_mcp" / "server.py").is_file():
        raise SystemExit(f"{checkout} is not a checkout of canvrno/ProxmoxMCP (no src/proxmox_mcp/server.py)")
    requirements = peer_requirements(checkout)
    venv = cache_root / f"peer-venv-{checkout_digest(checkout, requirements)}"
    python = venv / "bin" / "python"
    if not (venv / READY_MARK).is_file():
        uv = shutil.which("uv")
        if uv is None:
            raise SystemExit("uv is needed to build the peer's venv (it is how this repository is run)")
        shutil.rmtree(venv, ignore_errors=True)
        print(f"building the peer's venv in {venv} ({', '.join(requirements)}) ...", flush=True)
        # Our own interpreter's Python (3.11), not whatever `python3` is first on PATH.
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *requirements], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(checkout)],
                       check=True)
        (venv / READY_MARK).write_text("\n".join(requirements) + "\n")
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return python, version


def write_peer_config(path: Path, sim: Any) -> Path:
    """Its config (config/models.py): the simulator's address and the same API token our api-worker uses.

    TLS stays verified: its `verify_ssl` is a bool handed to requests, and requests reads REQUESTS_CA_BUNDLE when
    verify is True, so peer_env points that at the simulator's certificate (ours pins the same certificate's
    fingerprint)."""
    token = sim.admin_token
    config = {
        "proxmox": {"host": sim.host, "port": sim.api_port, "verify_ssl": True, "service": "PVE"},
        "auth": {"user": token["user"], "token_name": token["token_id"], "token_value": token["secret"]},
        "logging": {"level": "WARNING"},
    }
    return write_private(path, json.dumps(config, indent=2))


def peer_argv(python: Path) -> list[str]:
    """Its console script is broken (`proxmox_mcp.server:main` does not exist): run the module, as its README's
    manual start does."""
    return [str(python), "-m", "proxmox_mcp.server"]


def peer_env(config_path: Path, sim: Any) -> dict[str, str]:
    return {"PROXMOX_MCP_CONFIG": str(config_path), "REQUESTS_CA_BUNDLE": sim.cert_file}
