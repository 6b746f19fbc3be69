"""The `pve-sim` command: help, argument errors, the ready line, persistence, faults from flags, clean exit."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest
import requests

from tests.support.procs import VENV_BIN
from tests.support.sim import SimInfo, start_sim


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "pve-sim"), *args], capture_output=True, text=True, timeout=30)


def test_help_documents_every_option_and_the_control_endpoints() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--ssh-port",
        "--no-ssh",
        "--seed",
        "--nodes",
        "--guests",
        "--task-duration",
        "--state-dir",
        "--latency",
        "--error-rate",
        "--auth-fail-delay",
        "--log-level",
    ):
        assert option in result.stdout, option
    for endpoint in ("POST   /_sim/faults", "DELETE /_sim/faults", "POST   /_sim/reset"):
        assert endpoint in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], "--nodes"),
        (["--guests", "many"], "--guests"),
        (["--port", "70000"], "--port"),
        (["--latency", "no-equals-sign"], "REGEX=VALUE"),
        (["--error-rate", "^/x$=2"], "error_rate"),
        (["--latency", "(=5"], "regular expression"),
        (["--task-duration", "-1"], "--task-duration"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_busy_port_is_a_clear_start_failure(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_cli("--port", str(busy.getsockname()[1]), "--no-ssh", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert result.stdout == ""


def test_the_ready_line_describes_both_faces(pve_sim: SimInfo) -> None:
    raw = pve_sim.raw
    assert raw["event"] == "ready" and raw["pid"] == pve_sim.proc.pid
    assert raw["api_url"] == f"https://127.0.0.1:{pve_sim.api_port}/api2/json"
    der = ssl.PEM_cert_to_DER_cert(Path(pve_sim.cert_file).read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    assert pve_sim.fingerprint == ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    for token in (pve_sim.admin_token, pve_sim.readonly_token):
        assert token["full_id"] == f"{token['user']}!{token['token_id']}"
        assert token["header"] == f"PVEAPIToken={token['full_id']}={token['secret']}"
    assert pve_sim.nodes == ["pve1", "pve2", "pve3"]
    key = Path(pve_sim.ssh_private_key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert pve_sim.ssh_host_public_key.startswith("ssh-ed25519 AAAA")
    assert pve_sim.ssh_host_key_fingerprint.startswith("SHA256:")
    assert pve_sim.ssh_user == "root" and pve_sim.root_password


def test_a_restart_with_the_same_state_dir_keeps_certificate_keys_secrets_and_ports(tmp_path: Path) -> None:
    first = start_sim(tmp_path)
    first.proc.stop()
    second = start_sim(tmp_path)
    try:
        assert second.fingerprint == first.fingerprint
        assert second.ssh_host_key_fingerprint == first.ssh_host_key_fingerprint
        assert second.admin_token == first.admin_token and second.readonly_token == first.readonly_token
        assert second.root_password == first.root_password
        assert (second.api_port, second.ssh_node_ports) == (first.api_port, first.ssh_node_ports)
        # The token handed out before the restart still works, as a real node's does after a reboot.
        assert len(_guests(second)) == 8
        assert stat.S_IMODE((tmp_path / "state" / "secrets.json").stat().st_mode) == 0o600
        third = start_sim(tmp_path / "again", seed=7)
        try:
            assert third.ssh_host_key_fingerprint != second.ssh_host_key_fingerprint
            assert third.admin_token["secret"] != second.admin_token["secret"]
            assert _guests(third) == _guests(second)
        finally:
            third.proc.stop()
    finally:
        second.proc.stop()


def test_a_port_kept_from_the_last_start_that_is_now_taken_is_replaced_by_a_free_one(tmp_path: Path) -> None:
    first = start_sim(tmp_path, extra_args=["--no-ssh"])
    first.proc.stop()
    assert first.ssh_port is None and first.ssh_node_ports == {}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first.api_port))
        busy.listen()
        second = start_sim(tmp_path, extra_args=["--no-ssh"])
        try:
            assert second.api_port != first.api_port
            assert second.admin_token == first.admin_token
            assert len(_guests(second)) == 8
        finally:
            second.proc.stop()


def _guests(info: SimInfo) -> list[tuple[int, str, str, str, int]]:
    data = requests.get(
        f"{info.api_url}/cluster/resources",
        params={"type": "vm"},
        verify=info.cert_file,
        timeout=10,
        headers={"Authorization": info.admin_token["header"]},
    ).json()["data"]
    return sorted((g["vmid"], g["type"], g["node"], g["name"], g["maxmem"]) for g in data)


def test_the_seed_decides_the_cluster(tmp_path: Path) -> None:
    one = start_sim(tmp_path / "a", seed=1, nodes=2, guests=5, extra_args=["--no-ssh"])
    two = start_sim(tmp_path / "b", seed=2, nodes=2, guests=5, extra_args=["--no-ssh"])
    try:
        assert _guests(one) != _guests(two)
        assert len(_guests(one)) == 5 and one.nodes == ["pve1", "pve2"]
    finally:
        one.proc.stop()
        two.proc.stop()


def test_fault_flags_and_auth_delay_apply_from_the_start(tmp_path: Path) -> None:
    info = start_sim(
        tmp_path,
        extra_args=[
            "--no-ssh",
            "--error-rate",
            "^/version$=1",
            "--latency",
            "^/nodes$=250",
            "--auth-fail-delay",
            "0.3",
        ],
    )
    try:
        headers = {"Authorization": info.admin_token["header"]}
        failing = requests.get(f"{info.api_url}/version", headers=headers, verify=info.cert_file, timeout=10)
        assert failing.status_code == 500
        started = time.monotonic()
        assert requests.get(f"{info.api_url}/nodes", headers=headers, verify=info.cert_file, timeout=10).ok
        assert time.monotonic() - started >= 0.25
        started = time.monotonic()
        assert requests.get(f"{info.api_url}/nodes", verify=info.cert_file, timeout=10).status_code == 401
        assert time.monotonic() - started >= 0.3
    finally:
        info.proc.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly_within_a_second_even_with_clients_attached(tmp_path: Path, signum: int) -> None:
    info = start_sim(tmp_path)
    session = requests.Session()
    session.get(
        f"{info.api_url}/version",
        headers={"Authorization": info.admin_token["header"]},
        verify=info.cert_file,
        timeout=10,
    )

    async def hold_ssh_and_stop() -> float:
        async with asyncssh.connect(
            info.host,
            info.ssh_port,
            username="root",
            client_keys=[info.ssh_private_key],
            known_hosts=None,
            agent_path=None,
        ) as conn:
            process = await conn.create_process("echo attached; sleep 30")
            assert await asyncio.wait_for(process.stdout.readline(), 5) == "attached\n"
            started = time.monotonic()
            info.proc.popen.send_signal(signum)
            await asyncio.to_thread(info.proc.popen.wait, 5)
            process.close()
            return time.monotonic() - started

    try:
        elapsed = asyncio.run(hold_ssh_and_stop())
    finally:
        session.close()
        info.proc.stop()
    assert info.proc.popen.returncode == 0
    assert elapsed < 1.0
