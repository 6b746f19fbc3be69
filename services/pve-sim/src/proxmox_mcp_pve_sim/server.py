"""Start both faces in one event loop, print the ready line, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_mcp_pve_sim.faults import FaultRule, Faults
from proxmox_mcp_pve_sim.http_face import HttpFace
from proxmox_mcp_pve_sim.keys import load_or_create
from proxmox_mcp_pve_sim.persisted import load_or_create_secrets, save_ports, saved_ports
from proxmox_mcp_pve_sim.sim import Sim, SimOptions
from proxmox_mcp_pve_sim.ssh_face import SshFace

log = logging.getLogger("pve-sim")


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8006
    ssh_port: int = 2222
    ssh: bool = True
    state_dir: Path | None = None
    options: SimOptions = field(default_factory=SimOptions)
    fault_rules: list[FaultRule] = field(default_factory=list[FaultRule])
    log_level: str = "WARNING"


def _listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _listen_socket_kept(host: str, port: int, saved: int | None) -> socket.socket:
    if port == 0 and saved:
        try:
            return _listen_socket(host, saved)
        except OSError as exc:
            log.warning("API port %s of the last start is taken (%s): using another", saved, exc)
    return _listen_socket(host, port)


async def _ssh_listen_kept(face: SshFace, host: str, port: int, saved: int | None, node: str) -> int:
    if port == 0 and saved:
        try:
            return await face.listen(host, saved, node)
        except OSError as exc:
            log.warning("SSH port %s of node %s at the last start is taken (%s): using another", saved, node, exc)
    return await face.listen(host, port, node)


def _api_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(config: ServerConfig, ready: Any = None) -> int:
    temp_dir: str | None = None
    state_dir = config.state_dir
    if state_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="pve-sim-")
        state_dir = Path(temp_dir)
    try:
        return await _serve(config, state_dir.resolve(), ready)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


async def _serve(config: ServerConfig, state_dir: Path, ready: Any) -> int:
    options = config.options
    node_names = [f"pve{index}" for index in range(1, options.nodes + 1)]
    keys = load_or_create(state_dir, node_names, config.host)
    sim = Sim(
        options,
        faults=Faults(config.fault_rules),
        fingerprint=keys.fingerprint,
        sim_secrets=load_or_create_secrets(state_dir),
    )
    # Ports left to us (0) are the ones of the last start with this state directory, while they are free.
    saved = saved_ports(state_dir)

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(keys.cert_file, keys.key_file)
    sock = _listen_socket_kept(config.host, config.port, saved.get("api"))
    api_port = int(sock.getsockname()[1])
    http = HttpFace(sim, auth_fail_delay=options.auth_fail_delay)
    http_server = await http.start(sock, tls)

    ssh_face: SshFace | None = None
    ssh_ports: dict[str, int] = {}
    if config.ssh:
        ssh_face = SshFace(sim, host_key=keys.host_key, client_key=keys.client_public_key, api_port=api_port)
        for index, node in enumerate(sim.node_names):
            given = config.ssh_port if index == 0 else 0
            ssh_ports[node] = await _ssh_listen_kept(ssh_face, config.host, given, saved.get(f"ssh:{node}"), node)
    save_ports(state_dir, {"api": api_port, **{f"ssh:{node}": port for node, port in ssh_ports.items()}})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    info = _ready_info(config, sim, keys, api_port, ssh_ports, state_dir)
    if ready is not None:
        ready(info)
    else:
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
    log.warning("pve-sim ready: API https://%s:%s/api2/json, SSH %s", config.host, api_port, ssh_ports or "disabled")
    try:
        await stop.wait()
    finally:
        http_server.close()
        await http.close_connections()
        if ssh_face is not None:
            await ssh_face.close()
        await sim.tasks.stop_all()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(http_server.wait_closed(), 1)
    return 0


def _ready_info(
    config: ServerConfig, sim: Sim, keys: Any, api_port: int, ssh_ports: dict[str, int], state_dir: Path
) -> dict[str, Any]:
    first_node = sim.node_names[0]
    return {
        "event": "ready",
        "api_url": f"https://{_api_host(config.host)}:{api_port}/api2/json",
        "host": config.host,
        "api_port": api_port,
        "fingerprint": keys.fingerprint,
        "cert_file": str(keys.cert_file),
        "nodes": sim.node_names,
        "cluster_name": sim.cluster.name,
        "admin_token": sim.access.admin_token.as_dict(),
        "readonly_token": sim.access.readonly_token.as_dict(),
        "root_password": sim.access.root_password,
        "ssh_port": ssh_ports.get(first_node) if ssh_ports else None,
        "ssh_node_ports": ssh_ports,
        "ssh_user": "root",
        "ssh_host_key_fingerprint": keys.host_key_fingerprint,
        "ssh_host_public_key": keys.host_public_key,
        "ssh_private_key": str(keys.client_key_file),
        "seed": sim.options.seed,
        "guests": len(sim.cluster.guests),
        "task_duration": sim.options.task_duration,
        "state_dir": str(state_dir),
        "pid": os.getpid(),
    }
