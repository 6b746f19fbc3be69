"""The CLI's process lifecycle: demo shuts down cleanly on Ctrl-C; `up` works from the original variables."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.e2e.test_six_tools import SIX_TOOLS
from tests.support.demo import pid_alive, start_demo
from tests.support.mcp_client import http_client
from tests.support.procs import free_port, start_process, wait_until
from tests.support.sim import SimInfo, start_sim
from tests.support.sshd import SshdServer, start_sshd


def test_sigint_stops_the_demo_and_every_process_it_started(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo")
    try:
        pids = demo.pids()
        assert len(pids) >= 5  # the CLI, nats-server, pve-sim, both workers
        assert all(pid_alive(pid) for pid in pids)
        demo.interrupt()
        # 0 from a clean shutdown, or 130 when the shell reports the Ctrl-C itself, as shells do.
        assert demo.proc.popen.wait(timeout=30) in (0, 130)
        wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=15, what="every child to exit")
        # The Ctrl-C reached only the CLI, which stopped the gateway and workers before NATS: nobody lost NATS.
        assert '"nats error"' not in demo.proc.log_text()
    finally:
        demo.proc.stop()


@pytest.fixture(scope="module")
def up_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimInfo, SshdServer]]:
    workdir = tmp_path_factory.mktemp("up")
    sim = start_sim(workdir / "sim")
    try:
        sshd = start_sshd(workdir / "sshd")
        try:
            yield sim, sshd
        finally:
            sshd.close()
    finally:
        sim.proc.stop()


async def test_up_with_the_original_environment_variables_serves_all_six_tools(
    up_targets: tuple[SimInfo, SshdServer], tmp_path: Path
) -> None:
    sim, sshd = up_targets
    token = sim.admin_token
    env = {
        "SSH_HOST": "127.0.0.1", "SSH_PORT": str(sshd.port), "SSH_USER": sshd.user,
        "SSH_KEY_PATH": str(sshd.encrypted_key), "SSH_KEY_PASSPHRASE": sshd.passphrase,
        "SSH_KNOWN_HOSTS": str(sshd.known_hosts), "SSH_NODE": "pve1",
        "PROXMOX_HOST": sim.host, "PROXMOX_PORT": str(sim.api_port), "PROXMOX_USER": token["user"],
        "PROXMOX_TOKEN_NAME": token["token_id"], "PROXMOX_TOKEN_VALUE": token["secret"],
        "PROXMOX_FINGERPRINT": sim.fingerprint, "PMCP_TOKEN": "up-" + sim.admin_token["secret"][:8],
        "PMCP_CONFIG": "",
    }
    info_file = tmp_path / "up.json"
    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", "up", "--port", str(free_port()), "--info-file",
            str(info_file), "--env-file", str(tmp_path / "absent.env")]
    proc = start_process("up", argv, tmp_path, env=env, cwd=tmp_path)
    try:
        wait_until(info_file.exists, timeout=60, what="`up` to report ready", proc=proc, interval=0.1)
        info = json.loads(info_file.read_text())
        async with http_client(info["mcp_url"], info["token"]) as client:
            assert {t.name for t in (await client.list_tools()).tools} >= SIX_TOOLS
            whoami = await client.call_tool("execute_command", {"command": "whoami"})
            assert not whoami.is_error, whoami.content
            assert whoami.structured_content["stdout"].strip() == sshd.user  # type: ignore[index]
            vms = await client.call_tool("list_vms", {})
            assert not vms.is_error and vms.structured_content["count"] == sim.raw["guests"]  # type: ignore[index]
            version = await client.call_tool("proxmox_api", {"path": "/version"})
            assert not version.is_error
        started = time.monotonic()
        proc.stop()
        assert time.monotonic() - started < 20
        assert proc.popen.returncode == 0
    finally:
        proc.stop()


def test_up_without_configuration_says_how_to_configure(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", "up", "--env-file", str(tmp_path / "none.env")]
    env: dict[str, str] = dict.fromkeys(("SSH_HOST", "PROXMOX_HOST", "PMCP_CONFIG"), "")
    proc = start_process("up-unconfigured", argv, tmp_path, env=env, cwd=tmp_path)
    assert proc.popen.wait(timeout=30) == 2
    assert "PMCP_CONFIG" in proc.log_text() and "SSH_HOST" in proc.log_text()
