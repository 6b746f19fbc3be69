"""The SSH face: auth, host key, exec semantics, signals, forwarding only to the API."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator

import asyncssh
import paramiko
import pytest

from tests.support.sim import SimInfo


def known_hosts(info: SimInfo, port: int) -> asyncssh.SSHKnownHosts:
    return asyncssh.import_known_hosts(f"[{info.host}]:{port} {info.ssh_host_public_key}\n")


async def connect(info: SimInfo, port: int | None = None, **kwargs: object) -> asyncssh.SSHClientConnection:
    port = port or info.ssh_port
    assert port is not None
    options: dict[str, object] = {
        "username": "root",
        "client_keys": [info.ssh_private_key],
        "agent_path": None,
        "known_hosts": known_hosts(info, port),
        **kwargs,
    }
    return await asyncssh.connect(info.host, port, **options)  # type: ignore[arg-type]


@pytest.fixture
async def conn(pve_sim: SimInfo) -> AsyncIterator[asyncssh.SSHClientConnection]:
    connection = await connect(pve_sim)
    try:
        yield connection
    finally:
        connection.close()
        await connection.wait_closed()


async def test_the_printed_key_logs_in_and_the_host_key_matches_the_printed_fingerprint(pve_sim: SimInfo) -> None:
    async with await connect(pve_sim) as connection:
        server_key = connection.get_server_host_key()
        assert server_key is not None
        assert server_key.get_fingerprint("sha256") == pve_sim.ssh_host_key_fingerprint
        result = await connection.run("whoami", check=True)
        assert result.stdout == "root\n"


async def test_the_root_password_logs_in_and_a_wrong_one_is_refused(pve_sim: SimInfo) -> None:
    async with await connect(pve_sim, client_keys=None, password=pve_sim.root_password) as connection:
        assert (await connection.run("hostname", check=True)).stdout == f"{pve_sim.nodes[0]}\n"
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(pve_sim, client_keys=None, password="wrong")
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(pve_sim, username="admin")
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(pve_sim, client_keys=[asyncssh.generate_private_key("ssh-ed25519")])


async def test_stdout_stderr_and_exit_status_travel_separately(conn: asyncssh.SSHClientConnection) -> None:
    ok = await conn.run("hostname")
    assert (ok.stdout, ok.stderr, ok.exit_status) == ("pve1\n", "", 0)
    missing = await conn.run("nosuchcommand --flag")
    assert (missing.stdout, missing.stderr, missing.exit_status) == (
        "",
        "bash: nosuchcommand: command not found\n",
        127,
    )
    failed = await conn.run("pvesh get /nodes/pve1/qemu/999/status/current")
    assert failed.exit_status == 255
    assert failed.stderr == "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n"
    assert (await conn.run("false")).exit_status == 1


async def test_pvesh_json_matches_the_https_answer(conn: asyncssh.SSHClientConnection, pve_sim: SimInfo) -> None:
    result = await conn.run("pvesh get /version --output-format json", check=True)
    request = urllib.request.Request(
        f"{pve_sim.api_url}/version", headers={"Authorization": pve_sim.admin_token["header"]}
    )
    with urllib.request.urlopen(request, context=pve_sim.ssl_context(), timeout=10) as response:
        assert json.loads(str(result.stdout)) == json.loads(response.read())["data"]


async def test_sleep_really_waits_and_timeout_cuts_it_short(conn: asyncssh.SSHClientConnection) -> None:
    started = time.monotonic()
    assert (await conn.run("sleep 0.3")).exit_status == 0
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert (await conn.run("timeout 0.2 sleep 30")).exit_status == 124
    assert (await conn.run("timeout -s KILL 0.2 sleep 30")).exit_status == 137
    assert time.monotonic() - started < 5


async def test_a_signal_request_ends_a_running_sleep(conn: asyncssh.SSHClientConnection) -> None:
    process = await conn.create_process("echo started; sleep 30")
    assert await asyncio.wait_for(process.stdout.readline(), 5) == "started\n"  # the sleep is what runs now
    started = time.monotonic()
    process.send_signal("TERM")
    result = await asyncio.wait_for(process.wait(), 5)
    assert result.exit_signal is not None and result.exit_signal[0] == "TERM"
    assert time.monotonic() - started < 2


async def test_closing_the_channel_ends_a_running_command(
    conn: asyncssh.SSHClientConnection, fresh_sim: SimInfo
) -> None:
    listing = [line.split() for line in str((await conn.run("qm list")).stdout).splitlines()[1:]]
    stopped = next(vmid for vmid, _, status, *_ in listing if status == "stopped")
    running = next(vmid for vmid, _, status, *_ in listing if status == "running")
    process = await conn.create_process(f"echo started && sleep 0.6 && qm start {stopped}")
    assert await asyncio.wait_for(process.stdout.readline(), 5) == "started\n"
    process.close()
    # The same wait and a power task of the same length on a channel left open, begun after the close: once
    # it is done, the closed channel's start would have finished too, had closing not ended that command.
    control = await conn.run(f"sleep 0.6 && qm stop {running}", timeout=10)
    assert control.exit_status == 0, control.stderr
    assert (await conn.run(f"qm status {running}")).stdout == "status: stopped\n"
    assert (await conn.run(f"qm status {stopped}")).stdout == "status: stopped\n"


async def test_each_node_has_its_own_ssh_port(pve_sim: SimInfo) -> None:
    for node, port in pve_sim.ssh_node_ports.items():
        async with await connect(pve_sim, port) as connection:
            assert (await connection.run("hostname")).stdout == f"{node}\n"
    assert pve_sim.ssh_node_ports[pve_sim.nodes[0]] == pve_sim.ssh_port


async def test_pct_exec_runs_the_command_inside_the_container(
    conn: asyncssh.SSHClientConnection, fresh_sim: SimInfo
) -> None:
    listing = str((await conn.run("pct list")).stdout).splitlines()[1:]
    running = next(line.split() for line in listing if "running" in line)
    result = await conn.run(f"pct exec {running[0]} -- hostname")
    assert (result.stdout, result.exit_status) == (f"{running[-1]}\n", 0)
    assert (await conn.run(f"pct exec {running[0]} -- pvesh get /version")).exit_status == 127


def _get_version(port: int, info: SimInfo) -> dict[str, object]:
    context = ssl.create_default_context(cafile=info.cert_file)
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/api2/json/version", headers={"Authorization": info.admin_token["header"]}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.mark.parametrize("target_port", ["api", 8006])
async def test_a_tunnel_to_the_api_port_reaches_the_https_api(
    conn: asyncssh.SSHClientConnection, pve_sim: SimInfo, target_port: str | int
) -> None:
    port = pve_sim.api_port if target_port == "api" else 8006
    listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", port)
    try:
        data = await asyncio.to_thread(_get_version, listener.get_port(), pve_sim)
        assert data["release"] == "9.1"
    finally:
        listener.close()


async def test_tunnels_torn_down_mid_request_leave_the_connection_working(
    conn: asyncssh.SSHClientConnection, pve_sim: SimInfo
) -> None:
    async def abandon(i: int) -> None:
        reader, writer = await conn.open_connection("127.0.0.1", 8006)
        writer.write(b"\x16\x03\x01" + bytes(range(i % 200)))  # the start of a TLS hello, then gone
        if i % 2:
            writer.write_eof()
            await reader.read(10)
        writer.close()

    await asyncio.gather(*(abandon(i) for i in range(60)))
    listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", 8006)
    try:
        data = await asyncio.to_thread(_get_version, listener.get_port(), pve_sim)
        assert data["release"] == "9.1"
    finally:
        listener.close()
    assert (await conn.run("hostname", check=True)).exit_status == 0


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 22), ("10.0.0.1", 8006), ("example.com", 443)])
async def test_forwarding_anywhere_else_is_refused(conn: asyncssh.SSHClientConnection, host: str, port: int) -> None:
    with pytest.raises(asyncssh.ChannelOpenError):
        await conn.open_connection(host, port)


async def test_the_interactive_shell_answers_line_by_line(conn: asyncssh.SSHClientConnection) -> None:
    process = await conn.create_process(term_type="xterm")
    process.stdin.write("hostname\nexit 3\n")
    result = await asyncio.wait_for(process.wait(), 5)
    assert "root@pve1:~# " in str(result.stdout) and "pve1\r\n" in str(result.stdout)
    assert result.exit_status == 3


def test_paramiko_with_a_password_runs_a_command(pve_sim: SimInfo) -> None:
    client = paramiko.SSHClient()
    client.get_host_keys().add(
        f"[{pve_sim.host}]:{pve_sim.ssh_port}",
        "ssh-ed25519",
        paramiko.Ed25519Key(data=_key_blob(pve_sim.ssh_host_public_key)),
    )
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        pve_sim.host,
        port=pve_sim.ssh_port or 22,
        username="root",
        password=pve_sim.root_password,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        _, stdout, stderr = client.exec_command("uptime")
        assert " up " in stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0
        assert stderr.read() == b""
    finally:
        client.close()


def _key_blob(public_line: str) -> bytes:
    import base64

    return base64.b64decode(public_line.split()[1])
