"""The doctor's orchestration: config, then SSH (and the API through SSH in tunnel/pvesh mode), the API, which
API modes work from here, NATS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import socket
import threading

import paramiko
from proxmox_mcp_contracts.settings import ClusterConfig
from proxmox_mcp_contracts.subjects import SUBJECT_PREFIX, WorkerKind, service_name
from proxmox_mcp_runtime.config import ConfigError, load_proxmox_config
from proxmox_mcp_runtime.discovery import gather_replies
from proxmox_mcp_runtime.worker import nats_servers

from proxmox_mcp_cli.doctor_api import ORIGINAL_TOOLS, check_api
from proxmox_mcp_cli.doctor_modes import check_api_modes
from proxmox_mcp_cli.doctor_report import Report
from proxmox_mcp_cli.doctor_ssh import (
    SshOptions,
    check_key,
    check_pveproxy,
    check_user_rights,
    host_session,
    run,
    target_of,
    tcp_reachable,
)


def _load_cluster(report: Report, args: argparse.Namespace) -> ClusterConfig | None:
    try:
        config = load_proxmox_config(config_file=args.config)
    except ConfigError as exc:
        report.fail("config", str(exc), "fix the configuration (README.md, 'Running against your cluster')")
        return None
    cluster = config.cluster(args.cluster)
    if cluster is None:
        names = ", ".join(c.name for c in config.clusters) or "none"
        report.fail("config", f"no cluster named {args.cluster!r} (configured: {names})", "pass --cluster NAME")
        return None
    report.cluster = cluster.name
    api = cluster.api
    where = f"{cluster.api_host()}:{api.port}" if cluster.api_host() else "no API host"
    report.ok("config", f"cluster {cluster.name!r}: {len(cluster.hosts)} SSH host(s), API {api.mode} ({where})")
    return cluster


def _tunnel_socket(transport: paramiko.Transport, port: int, timeout: float) -> socket.socket:
    """A local socket whose other end is a direct-tcpip channel to the host's 127.0.0.1:port."""
    channel = transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=timeout)
    ours, theirs = socket.socketpair()

    def pump() -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            while True:
                readable, _, _ = select.select([theirs, channel], [], [], 1.0)
                if theirs in readable:
                    data = theirs.recv(65536)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in readable:
                    data = channel.recv(65536)
                    if not data:
                        break
                    theirs.sendall(data)
        channel.close()
        theirs.close()

    threading.Thread(target=pump, name="doctor-tunnel", daemon=True).start()
    return ours


def api_through_ssh(report: Report, cluster: ClusterConfig, transport: paramiko.Transport,
                    tools: list[str], timeout: float) -> None:
    """The API checks in pvesh or ssh-tunnel mode, over the host's SSH connection `transport`."""
    api = cluster.api
    if api.mode == "pvesh":
        result = run(transport, "pvesh get /version --output-format json", timeout)
        if result is not None and result.exit_code == 0:
            with contextlib.suppress(ValueError):
                version = json.loads(result.stdout).get("version", "?")
                report.ok("api.version", f"Proxmox VE {version} via pvesh over SSH")
                return
        report.fail("api.version", "`pvesh get /version` over SSH failed",
                    "pvesh needs root on the host: log in as root or allow `sudo pvesh` (README.md#security)")
        return
    try:
        _tunnel_socket(transport, api.port, timeout).close()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        if not transport.is_active():
            report.fail("api.tunnel", f"the SSH connection dropped while opening the tunnel ({exc})",
                        "check the host's sshd log (journalctl -u ssh) and rerun the doctor")
            return
        report.fail("api.tunnel", f"the host refused to forward to its 127.0.0.1:{api.port} ({type(exc).__name__})",
                    "allow port forwarding for this key: permitopen=\"127.0.0.1:8006\" in authorized_keys "
                    "(`proxmox-mcp keygen --tunnel` prints the line) and AllowTcpForwarding in sshd_config")
        return
    report.ok("api.tunnel", f"port {api.port} is reachable through the SSH tunnel")

    def connect() -> socket.socket:
        try:
            return _tunnel_socket(transport, api.port, timeout)
        except (paramiko.SSHException, EOFError) as exc:
            raise ConnectionError(f"the SSH connection carrying the tunnel failed ({exc})") from None

    check_api(report, api, connect, cluster.api_host() or "localhost", tools, timeout)


def _check_ssh_and_tunnel(report: Report, cluster: ClusterConfig, args: argparse.Namespace, tools: list[str]) -> None:
    options = SshOptions(timeout=args.timeout, allow_root=args.allow_root)
    if not cluster.hosts:
        report.skip("ssh", "no SSH hosts configured (SSH_HOST or [[clusters.hosts]])")
        if cluster.api.mode != "direct":
            report.fail("api.mode", f"api mode {cluster.api.mode} needs an SSH host", "configure SSH_HOST")
        return
    key = check_key(report, cluster.ssh)
    api_via_ssh = cluster.api.mode != "direct"
    for host in cluster.hosts:
        if args.node and host.node not in args.node:
            continue
        with host_session(report, cluster.ssh, host, key, options) as transport:
            if transport is None:
                continue
            target = target_of(cluster.ssh, host)
            check_user_rights(report, cluster.ssh, target, transport, options)
            check_pveproxy(report, target, transport, options.timeout)
            if api_via_ssh and host == cluster.default_host:
                api_through_ssh(report, cluster, transport, tools, args.timeout)
                api_via_ssh = False
    if api_via_ssh:
        node = cluster.default_host.node if cluster.default_host else "?"
        report.skip("api", f"api mode {cluster.api.mode} goes through SSH to {node}, which could not be used (above)")


def _check_api_direct(report: Report, cluster: ClusterConfig, tools: list[str], timeout: float) -> None:
    host, port = cluster.api_host(), cluster.api.port
    if not host:
        report.skip("api", "no API host configured (PROXMOX_HOST / [clusters.api] host)")
        return
    problem = tcp_reachable(host, port, timeout)
    if problem is not None:
        report.fail("api.reach", f"{host}:{port}: {problem}",
                    "is pveproxy running on the host (systemctl status pveproxy)? is port 8006 open in the firewall "
                    "between this machine and the host?")
        return
    report.ok("api.reach", f"{host}:{port} accepts connections")
    check_api(report, cluster.api, lambda: socket.create_connection((host, port), timeout=timeout), host, tools,
              timeout)


async def _check_nats(report: Report, url: str, cluster: str | None, timeout: float) -> None:
    from proxmox_mcp_runtime.nats_typed import connect

    async def quiet(_exc: Exception) -> None:
        return None

    try:
        # wait_for: with nothing listening, nats-py keeps retrying the server list instead of giving up.
        nc = await asyncio.wait_for(
            connect(servers=nats_servers(url), name="proxmox-mcp-doctor", connect_timeout=timeout,
                    allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet),
            timeout=timeout + 1,
        )
    except Exception as exc:
        report.fail("nats", f"cannot connect to NATS at {url} ({type(exc).__name__})",
                    "start it (systemctl start proxmox-mcp-nats / docker compose up -d nats) or fix NATS_URL")
        return
    try:
        report.ok("nats", f"connected to {url}")
        for kind in WorkerKind:
            name = f"workers.{kind.value}"
            replies = await gather_replies(nc, f"$SRV.INFO.{service_name(kind)}", min(timeout, 0.5))
            prefix = f"{SUBJECT_PREFIX}.{cluster}.{kind.value}." if cluster else f"{SUBJECT_PREFIX}."
            serving = [r for r in replies
                       if any(str(e.get("subject", "")).startswith(prefix) for e in r.get("endpoints") or ())]
            start = (f"start one: systemctl start proxmox-mcp-{kind.value}-worker / docker compose up -d "
                     f"{kind.value}-worker")
            if not replies:
                report.fail(name, f"no {service_name(kind)} answers on NATS", start)
            elif not serving:
                report.fail(name, f"{len(replies)} {kind.value}-worker(s) answer, none serves cluster {cluster!r}",
                            f"give them the same cluster config (PMCP_CONFIG) as this doctor; {start}")
            else:
                report.ok(name, f"{len(serving)} {kind.value}-worker instance(s) serve cluster {cluster!r}")
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def diagnose_all(args: argparse.Namespace) -> list[Report]:
    """One report per configured cluster (one report with the configuration problem when it cannot load)."""
    try:
        names = [cluster.name for cluster in load_proxmox_config(config_file=args.config).clusters]
    except ConfigError:
        return [diagnose(args)]
    return [diagnose(argparse.Namespace(**{**vars(args), "cluster": name})) for name in names]


def diagnose(args: argparse.Namespace) -> Report:
    report = Report()
    tools = [t.strip() for t in (args.tools or ",".join(ORIGINAL_TOOLS)).split(",") if t.strip()]
    cluster = _load_cluster(report, args)
    if cluster is not None:
        _check_ssh_and_tunnel(report, cluster, args, tools)
        if cluster.api.mode == "direct":
            _check_api_direct(report, cluster, tools, args.timeout)
        check_api_modes(report, cluster, args.timeout)
    nats_url = args.nats_url or os.environ.get("NATS_URL")
    if nats_url:
        asyncio.run(_check_nats(report, nats_url, cluster.name if cluster else None, args.timeout))
    else:
        report.skip("nats", "NATS_URL not set: NATS and the workers were not checked (pass --nats-url)")
    return report
