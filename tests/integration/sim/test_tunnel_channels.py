"""The pooled SSH connection survives tunnels that close while data is still arriving for them.

Through a tunnel, a TLS client that closes right after its handshake races the server's session tickets:
with paramiko's own channel pipe the transport thread then writes to a closed fd, and the whole SSH
connection dies (paramiko issues #1700/#2271). Every entry point that opens SSH channels installs a locked
pipe instead (proxmox_mcp_runtime.ssh.paramiko_pipes.install); importing the SSH code changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import paramiko.pipe
import pytest
from proxmox_mcp_contracts.settings import HostConfig, SshSettings
from proxmox_mcp_runtime.ssh import SshPool
from proxmox_mcp_runtime.ssh.paramiko_pipes import LockedPosixPipe

from tests.support.procs import wait_until_async
from tests.support.sim import SimInfo

CLIENTS = 6
HANDSHAKES = 1000
"""Hang-ups to survive, each a chance for the race: with paramiko's own pipe the connection died after 30 to ~800
of them here (~200 a second). A count, not a duration, so a slow machine exercises the race just as much."""


def sim_pool(info: SimInfo) -> tuple[SshPool, HostConfig]:
    assert info.ssh_port is not None
    settings = SshSettings(user="root", port=info.ssh_port, key_path=Path(info.ssh_private_key),
                           host_key_fingerprints=[info.ssh_host_key_fingerprint], connect_timeout=5.0)
    return SshPool(settings), HostConfig(node=info.nodes[0], address=info.host)


def handshake_then_hang_up(port: int, context: ssl.SSLContext, stop: threading.Event, done: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            context.wrap_socket(raw).close()  # the server's session tickets are still on their way
            done.append(1)


def test_this_test_process_gives_every_channel_the_locked_pipe() -> None:
    assert isinstance(paramiko.pipe.make_pipe(), LockedPosixPipe)


def _pipe_after(code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter, then name the module whose make_pipe paramiko would use."""
    probe = f"{code}\nimport paramiko.pipe\nprint(paramiko.pipe.make_pipe.__module__)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, **(env or {})})
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr


def test_importing_the_ssh_module_leaves_paramiko_as_it_is() -> None:
    assert _pipe_after("import proxmox_mcp_runtime.ssh") == "paramiko.pipe"


@pytest.mark.parametrize("entry", [
    "from proxmox_mcp_ssh_worker.service import main",
    "from proxmox_mcp_api_worker.service import main",
    "from proxmox_mcp_cli.main import main as cli\nmain = lambda: cli(['doctor', '--env-file', '/none', '--json'])",
], ids=["ssh-worker", "api-worker", "doctor"])
def test_every_entry_point_that_opens_ssh_channels_installs_the_locked_pipe(entry: str) -> None:
    # An unusable configuration makes each of them stop right after its start-up (exit 2, or a failed report).
    code = f"{entry}\ntry:\n    main()\nexcept SystemExit:\n    pass"
    assert _pipe_after(code, {"PMCP_CONFIG": "/nonexistent/clusters.toml"}) == "proxmox_mcp_runtime.ssh.paramiko_pipes"


async def test_tunnels_hung_up_mid_data_never_take_the_ssh_connection_down(pve_sim: SimInfo) -> None:
    pool, host = sim_pool(pve_sim)
    forward = await pool.forward_local(host, "127.0.0.1", 8006)
    context = ssl.create_default_context(cafile=pve_sim.cert_file)
    context.check_hostname = False
    stop = threading.Event()
    done: list[int] = []
    threads = [threading.Thread(target=handshake_then_hang_up, args=(forward.local_port, context, stop, done))
               for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        await wait_until_async(lambda: len(done) >= HANDSHAKES or pool.stats.reconnects > 0, timeout=60,
                               what=f"{HANDSHAKES} handshakes through the tunnel")
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
    try:
        assert pool.stats.reconnects == 0 and pool.connections_open == 1, "the SSH connection died under the tunnels"
        result = await pool.run(host, ["hostname"], timeout=10)
        assert result.stdout == f"{host.node}\n".encode()
        assert pool.stats.reconnects == 0
    finally:
        await forward.aclose()
        await pool.close()

