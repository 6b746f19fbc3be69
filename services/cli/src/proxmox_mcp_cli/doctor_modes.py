"""The doctor's "API modes" check: try GET /version in each way of reaching the API (direct HTTPS, HTTPS through
an SSH tunnel, pvesh over SSH) with the api-worker's own backends, and say which work from here.

The configured mode failing is a failure; another mode failing is a warning only (one mode is enough), but its
row says what it would take, so a user whose port 8006 is firewalled sees that ssh-tunnel or pvesh works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_api_worker.backends import build_backend, ssh_api_host
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_object
from proxmox_mcp_contracts.settings import ApiMode, ClusterConfig
from proxmox_mcp_runtime.ssh.connection import ConnectFailed

from proxmox_mcp_cli.doctor_report import Report

MODES: tuple[ApiMode, ...] = ("direct", "ssh-tunnel", "pvesh")
PVE_API_PORT = 8006
"""Where pveproxy listens on a Proxmox host. A configured api.port other than this is usually a port forward in
front of the host, so a tunnel tried as an alternative goes to the host's own 127.0.0.1:8006."""
_NOT_CONNECTED = re.compile(r"\b(cannot|could not) connect\b|while connecting")
SET_MODE = "set api.mode = \"{mode}\" in the cluster config, or PROXMOX_API_MODE={mode}"


@dataclass(frozen=True)
class ModeResult:
    mode: ApiMode
    ok: bool
    detail: str
    fix: str | None = None
    seconds: float = 0.0
    unreachable_port: int | None = None
    """Set when direct mode could not open a TCP connection to this port: the fix depends on what else works."""


def tunnel_port(cluster: ClusterConfig) -> int:
    """The port on the host's loopback that the tunnel goes to."""
    return cluster.api.port if cluster.api.mode == "ssh-tunnel" else PVE_API_PORT


def cluster_in_mode(cluster: ClusterConfig, mode: ApiMode, timeout: float) -> ClusterConfig:
    """A copy of the cluster reached in `mode`, every network step bounded by `timeout`."""
    api: dict[str, Any] = {"mode": mode, "timeout": timeout}
    if mode == "ssh-tunnel":
        api["port"] = tunnel_port(cluster)
    ssh = {"connect_timeout": min(cluster.ssh.connect_timeout, timeout), "keepalive_interval": 0}
    return cluster.model_copy(update={"api": cluster.api.model_copy(update=api),
                                      "ssh": cluster.ssh.model_copy(update=ssh)})


def _settings() -> ApiWorkerSettings:
    # model_construct: the defaults, without reading the api-worker's environment variables.
    return ApiWorkerSettings.model_construct(threads=4, ssh_sessions=2)


def _where(cluster: ClusterConfig, mode: ApiMode) -> str:
    """What the attempt in `mode` goes through, for the row's detail."""
    if mode == "direct":
        return f"HTTPS to {cluster.api_host()}:{cluster.api.port}"
    host = ssh_api_host(cluster)
    node = host.node if host is not None else "?"
    if mode == "ssh-tunnel":
        return f"HTTPS through SSH to {node}, then its 127.0.0.1:{tunnel_port(cluster)}"
    return f"`pvesh get /version` over SSH on {node}"


@contextlib.contextmanager
def _quiet_logs() -> Generator[None, None, None]:
    """The backends log their failures for the workers' JSON logs; the doctor reports them in its rows instead."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


async def probe_mode(cluster: ClusterConfig, mode: ApiMode, timeout: float) -> ModeResult:
    """GET /version through the api-worker's backend for `mode` (the same code the api-worker runs)."""
    variant = cluster_in_mode(cluster, mode, timeout)
    where = _where(variant, mode)
    backend, problem = build_backend(variant, _settings())
    if problem is not None:
        await backend.close()
        return ModeResult(mode, False, f"not tried: {problem}", _config_fix(mode, problem))
    started = time.monotonic()
    try:
        # SSH connect, forward and request each have `timeout`; the whole attempt gets a bound as well.
        async with asyncio.timeout(timeout * 3 + 1):
            data = await backend.request("GET", "/version", timeout=timeout)
    except TimeoutError:
        return ModeResult(mode, False, f"{where}: no answer within {timeout * 3 + 1:g}s", _timeout_fix(mode),
                          time.monotonic() - started, variant.api.port if mode == "direct" else None)
    except ServiceFailure as failure:
        seconds = time.monotonic() - started
        message = failure.info.message
        unreachable = variant.api.port if mode == "direct" and _NOT_CONNECTED.search(message) else None
        return ModeResult(mode, False, f"{where}: {message}", _failure_fix(variant, mode, failure), seconds,
                          unreachable)
    finally:
        with contextlib.suppress(Exception):
            await backend.close()
    seconds = time.monotonic() - started
    version = data.get("version", "?") if is_object(data) else "?"
    return ModeResult(mode, True, f"{where}: Proxmox VE {version} ({seconds * 1000:.0f} ms)", None, seconds)


async def probe_modes(cluster: ClusterConfig, timeout: float) -> list[ModeResult]:
    """All three modes at once (so the check takes as long as the slowest, not the sum)."""
    with _quiet_logs():
        return list(await asyncio.gather(*(probe_mode(cluster, mode, timeout) for mode in MODES)))


def _config_fix(mode: ApiMode, problem: str) -> str:
    if "credentials" in problem:
        return (f"{mode} needs API credentials: an API token (api.token_name, api.token_value / PROXMOX_TOKEN_NAME, "
                "PROXMOX_TOKEN_VALUE) or a password (api.password / PROXMOX_PASSWORD)")
    if "SSH host" in problem:
        return f"{mode} goes through SSH: configure the host (hosts / SSH_HOST) and the ssh settings"
    if "fingerprint" in problem:
        return "fix api.fingerprint (PROXMOX_FINGERPRINT): the certificate's SHA-256, 64 hex digits"
    return "complete the cluster's api settings (README.md, 'Running against your cluster')"


def _timeout_fix(mode: ApiMode) -> str:
    if mode == "direct":
        return "a firewall probably drops the API port on the way"
    return "check the SSH checks above; a slow host or a filtering firewall on the way can cause this"


def _is_ssh_problem(failure: ServiceFailure) -> bool:
    message = failure.info.message
    return isinstance(failure, ConnectFailed) or "SSH connection" in message or (
        failure.info.details.get("tunnel") is True and "refused to forward" not in message)


def _failure_fix(cluster: ClusterConfig, mode: ApiMode, failure: ServiceFailure) -> str:
    message = failure.info.message
    host = ssh_api_host(cluster)
    node = host.node if host is not None else "the host"
    if mode != "direct" and _is_ssh_problem(failure):
        return f"SSH to {node} does not work: fix it first (see the ssh.* checks above)"
    if failure.code is ErrorCode.PERMISSION_DENIED and ("certificate" in message or "TLS" in message):
        return ("trust the API certificate: pin it with PROXMOX_FINGERPRINT (api.fingerprint) after checking it on "
                "the host (pvenode cert info); see the api.tls check")
    if "(401)" in message:
        return "check the API token or password: pveum user token list USER; see the api.auth check"
    if mode == "direct":
        return _direct_fix(cluster, failure)
    if mode == "ssh-tunnel":
        return _tunnel_fix(cluster, node, message)
    return _pvesh_fix(node, failure)


def _direct_fix(cluster: ClusterConfig, failure: ServiceFailure) -> str:
    message = failure.info.message
    port = cluster.api.port
    if _NOT_CONNECTED.search(message):
        return f"port {port} is not reachable from here"
    if "TLS handshake" in message:
        return f"is {cluster.api_host()}:{port} the Proxmox API (https)? check api.host and api.port"
    return "check pveproxy's log on the host (journalctl -u pveproxy -n 50)"


def _tunnel_fix(cluster: ClusterConfig, node: str, message: str) -> str:
    port = tunnel_port(cluster)
    if "refused to forward" in message and "Connect failed" in message:
        return (f"nothing listens on {node}'s 127.0.0.1:{port}: is pveproxy running there (systemctl status "
                "pveproxy)? pveproxy listens on port 8006")
    if "refused to forward" in message:
        return (f"the SSH key or sshd is restricted from port forwarding: add port-forwarding,permitopen="
                f"\"127.0.0.1:{port}\" to the key's authorized_keys options (`proxmox-mcp keygen --tunnel` prints "
                "the line) and allow it in sshd_config (AllowTcpForwarding local)")
    if "TLS handshake" in message:
        return f"is {node}'s 127.0.0.1:{port} the Proxmox API (https)? pveproxy listens on port 8006"
    return "check pveproxy's log on the host (journalctl -u pveproxy -n 50)"


def _pvesh_fix(node: str, failure: ServiceFailure) -> str:
    message = failure.info.message
    if "pvesh is not available" in message:
        return (f"pvesh not found on {node}: api mode pvesh needs SSH to a Proxmox VE node itself; use api mode "
                "direct or ssh-tunnel otherwise")
    if failure.code is ErrorCode.TIMEOUT:
        return f"pvesh did not finish in time on {node}: check the host's load (pvesh get /version there)"
    return ("pvesh runs as the SSH user and needs root on the host: log in as root for api mode pvesh, or use "
            "api mode direct or ssh-tunnel with an API token")


def unreachable_fix(port: int, configured: bool, alternatives: list[ApiMode]) -> str:
    """Direct mode cannot open the API port: say which other mode to use, or what to open."""
    reach = (f"open port {port} from this machine to the host in the firewall and check pveproxy there (systemctl "
             "status pveproxy)")
    if not configured:
        return f"port {port} is not reachable from here; for api mode direct, {reach}"
    if alternatives:
        return (f"port {port} is not reachable from here: use api mode {alternatives[0]}, which works "
                f"({SET_MODE.format(mode=alternatives[0])}); or {reach}")
    return f"port {port} is not reachable from here: use api mode ssh-tunnel (SSH must work first), or {reach}"


def report_modes(report: Report, configured: ApiMode, results: list[ModeResult]) -> None:
    """One row per mode: the configured one ok or fail, the others ok or warn; the summary for --json."""
    working: list[ApiMode] = [r.mode for r in results if r.ok]
    modes: dict[str, dict[str, Any]] = {}
    for result in results:
        name = f"api.modes[{result.mode}]"
        is_configured = result.mode == configured
        others: list[ApiMode] = [m for m in working if m != result.mode]
        fix = result.fix
        if result.unreachable_port is not None:
            fix = unreachable_fix(result.unreachable_port, is_configured, others)
        elif is_configured and others:
            fix = f"{fix}; or switch to a mode that works from here: {SET_MODE.format(mode=others[0])}"
        if result.ok:
            row = report.ok(name, f"(configured) {result.detail}" if is_configured else result.detail)
        elif is_configured:
            row = report.fail(name, f"(configured) {result.detail}", fix)
        else:
            row = report.warn(name, f"{result.detail} (not the configured mode: informational)", fix)
        modes[result.mode] = {"ok": result.ok, "detail": result.detail, "fix": row.fix,
                              "seconds": round(result.seconds, 3)}
    report.api_modes = {"configured": configured, "working": working, "modes": modes}


def check_api_modes(report: Report, cluster: ClusterConfig, timeout: float) -> None:
    """Try every mode and report which work (bounded: about 3 x timeout in the worst case)."""
    results = asyncio.run(probe_modes(cluster, timeout))
    report_modes(report, cluster.api.mode, results)
