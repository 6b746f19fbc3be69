"""Start the simulator (`pve-sim`) for tests and drive its fault-injection endpoint."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.procs import VENV_BIN, Proc, start_process, wait_until


@dataclass
class SimInfo:
    """Every field of the simulator's ready line, plus the running process."""

    api_url: str
    host: str
    api_port: int
    fingerprint: str
    cert_file: str
    nodes: list[str]
    admin_token: dict[str, str]
    readonly_token: dict[str, str]
    root_password: str
    ssh_port: int | None
    ssh_user: str
    ssh_host_key_fingerprint: str
    ssh_host_public_key: str
    ssh_private_key: str
    pid: int
    proc: Proc
    ssh_node_ports: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """https://host:port, without /api2/json."""
        return self.api_url.removesuffix("/api2/json")

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts exactly the simulator's certificate."""
        return ssl.create_default_context(cafile=self.cert_file)


def start_sim(
    workdir: Path,
    *,
    seed: int = 7,
    nodes: int = 3,
    guests: int = 8,
    task_duration: float = 0.2,
    extra_args: Sequence[str] = (),
    timeout: float = 20.0,
) -> SimInfo:
    """Start pve-sim on free loopback ports (state in WORKDIR/state) and wait for its ready line."""
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path = workdir / "pve-sim.stdout"
    stdout_path.write_text("")
    argv = [
        str(VENV_BIN / "pve-sim"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ssh-port",
        "0",
        "--seed",
        str(seed),
        "--nodes",
        str(nodes),
        "--guests",
        str(guests),
        "--task-duration",
        str(task_duration),
        "--state-dir",
        str(workdir / "state"),
        *extra_args,
    ]
    proc = start_process("pve-sim", argv, workdir, stdout_path=stdout_path)
    try:
        wait_until(
            lambda: stdout_path.read_text().endswith("\n"), timeout=timeout, what="the pve-sim ready line", proc=proc
        )
        raw = json.loads(stdout_path.read_text().splitlines()[0])
    except BaseException:
        proc.stop()
        raise
    return SimInfo(
        api_url=raw["api_url"],
        host=raw["host"],
        api_port=raw["api_port"],
        fingerprint=raw["fingerprint"],
        cert_file=raw["cert_file"],
        nodes=raw["nodes"],
        admin_token=raw["admin_token"],
        readonly_token=raw["readonly_token"],
        root_password=raw["root_password"],
        ssh_port=raw["ssh_port"],
        ssh_user=raw["ssh_user"],
        ssh_host_key_fingerprint=raw["ssh_host_key_fingerprint"],
        ssh_host_public_key=raw["ssh_host_public_key"],
        ssh_private_key=raw["ssh_private_key"],
        pid=raw["pid"],
        proc=proc,
        ssh_node_ports=raw.get("ssh_node_ports") or {},
        raw=raw,
    )


def _control(info: SimInfo, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        f"{info.base_url}{path}",
        data=body,
        method=method,
        headers={"Authorization": info.admin_token["header"], "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=info.ssl_context(), timeout=10) as response:
        return json.loads(response.read())


def sim_faults(info: SimInfo, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace the simulator's fault rules, e.g. [{"path": "^/nodes$", "error_rate": 1.0, "status": 500}]."""
    return _control(info, "POST", "/_sim/faults", {"rules": rules})


def clear_sim_faults(info: SimInfo) -> dict[str, Any]:
    return _control(info, "DELETE", "/_sim/faults")


def reset_sim(info: SimInfo) -> dict[str, Any]:
    """Back to the seeded state (all tasks forgotten)."""
    return _control(info, "POST", "/_sim/reset")


def sim_node(info: SimInfo, node: str, *, online: bool, reachable: bool | None = None,
             proxy_delay_ms: float = 0) -> dict[str, Any]:
    """Take a simulated node offline (requests proxied to it fail at once, or hang proxy_delay_ms first) or back;
    online=True, reachable=False: the cluster still counts it, but requests to it fail or hang."""
    body: dict[str, Any] = {"online": online, "proxy_delay_ms": proxy_delay_ms}
    if reachable is not None:
        body["reachable"] = reachable
    return _control(info, "POST", f"/_sim/nodes/{node}", body)


def sim_storage_full(info: SimInfo, storage: str, *, full: bool) -> dict[str, Any]:
    """Make a storage full (backups to it fail) or give it its space back."""
    return _control(info, "POST", f"/_sim/storage/{storage}", {"full": full})


def sim_requests(info: SimInfo) -> dict[str, int]:
    """Authenticated API requests the simulator has served since start, by "METHOD /path"."""
    return _control(info, "GET", "/_sim/requests")["requests"]
