"""A host that stops answering (frozen: its kernel still ACKs TCP) fails a running command within the liveness
window, not at the command's timeout; a host that answers is never cut short."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import nats
import pytest
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_runtime.config import dump_config_toml
from proxmox_mcp_runtime.ssh import SshEvent, SshPool
from proxmox_mcp_runtime.ssh.liveness import LivenessPolicy

from tests.integration.ssh.test_pool import HOST, settings_for, unique_sleep
from tests.integration.ssh.test_worker import NODE, OPERATOR_CALLER, _cluster, run_error, start_worker
from tests.support.nats import NatsServer
from tests.support.procs import frozen
from tests.support.services import write_private
from tests.support.sim import start_sim
from tests.support.sshd import SshdServer, remote_processes

FAST = LivenessPolicy(interval=1.0, misses=3)


async def _fails_while_frozen(pool: SshPool, host: HostConfig, pattern: str, running: Callable[[], bool],
                              freeze: AbstractContextManager[None]) -> tuple[ServiceFailure, float]:
    call = asyncio.create_task(pool.run(host, f"sleep {pattern}", timeout=60))
    deadline = time.monotonic() + 10
    while not running():  # the command runs on the host before it freezes
        assert not call.done() and time.monotonic() < deadline, call
        await asyncio.sleep(0.02)
    with freeze:
        started = time.monotonic()
        with pytest.raises(ServiceFailure) as failure:
            await asyncio.wait_for(call, timeout=40)
        elapsed = time.monotonic() - started
    return failure.value, elapsed


async def test_a_command_on_a_host_that_freezes_fails_within_the_liveness_window_and_the_connection_is_dropped(
    sshd: SshdServer,
) -> None:
    events: list[SshEvent] = []
    pool = SshPool(settings_for(sshd), liveness=FAST, on_event=events.append)
    try:
        assert (await pool.run(HOST, "echo warm", timeout=10)).stdout == b"warm\n"
        pattern = unique_sleep()
        failure, elapsed = await _fails_while_frozen(pool, HOST, pattern, lambda: bool(remote_processes(pattern)),
                                                     sshd.frozen())
        assert failure.code is ErrorCode.UNAVAILABLE
        assert failure.info.retryable is False  # the command may have done its work: check before retrying
        assert f"node {HOST.node} stopped answering over SSH" in failure.info.message
        assert "no answer to 3 SSH keepalive probes in 3s" in failure.info.message
        assert "outcome is unknown" in failure.info.message
        assert 2.0 <= elapsed < 20, elapsed  # the window is ~3 s; the command's own timeout is 60 s
        assert any(e.kind == "disconnect" and e.outcome == "unresponsive" for e in events), events
        assert pool.connections_open == 0
        # Thawed, the host is usable again through a new connection.
        connects = pool.stats.connects
        assert (await pool.run(HOST, "echo back", timeout=10)).stdout == b"back\n"
        assert pool.stats.connects == connects + 1
        print(f"frozen host noticed after {elapsed:.2f}s (interval 1 s, 3 misses)")
    finally:
        await pool.close()


async def test_the_ssh_worker_takes_the_liveness_settings_from_its_environment_and_names_the_frozen_node(
    sshd: SshdServer, nats_server: NatsServer, thawed_control: None, tmp_path: Path
) -> None:
    cluster = f"sshtest-liveness-{secrets.token_hex(3)}"
    config = ProxmoxConfig(clusters=[_cluster(cluster, sshd, max_command_timeout=60)])
    config_path = write_private(tmp_path / "liveness.toml", dump_config_toml(config))
    proc = start_worker(config_path, tmp_path, "ssh-worker-liveness", NATS_URL=nats_server.url,
                        PMCP_SSH_LIVENESS_INTERVAL="1", PMCP_SSH_LIVENESS_MISSES="3")
    nc = await nats.connect(nats_server.url)
    try:
        pattern = unique_sleep()
        call = asyncio.create_task(run_error(nc, cluster, {"command": f"sleep {pattern}", "timeout": 60},
                                             caller=OPERATOR_CALLER, timeout=70))
        deadline = time.monotonic() + 15
        while not remote_processes(pattern):
            assert not call.done() and time.monotonic() < deadline, call
            await asyncio.sleep(0.02)
        with sshd.frozen():
            started = time.monotonic()
            error = await asyncio.wait_for(call, timeout=40)
            elapsed = time.monotonic() - started
        assert error.code is ErrorCode.UNAVAILABLE and error.retryable is False, error
        assert f"node {NODE} stopped answering over SSH" in error.message, error
        assert elapsed < 20, elapsed
    finally:
        await nc.close()
        proc.stop()


async def test_a_long_command_on_a_host_that_answers_is_not_cut_short_by_the_probes(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd), liveness=LivenessPolicy(interval=0.3, misses=2))
    try:
        output = await pool.run(HOST, "sleep 2.5; echo done", timeout=20)
        assert output.exit_code == 0 and output.stdout == b"done\n"
    finally:
        await pool.close()


async def test_liveness_probing_can_be_turned_off(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd), liveness=LivenessPolicy(interval=0, misses=1))
    try:
        assert pool.liveness.enabled is False
        assert (await pool.run(HOST, "sleep 0.5; echo still", timeout=10)).stdout == b"still\n"
    finally:
        await pool.close()


async def test_the_simulators_ssh_face_answers_the_probes_and_a_frozen_simulator_fails_the_command_in_time(
    tmp_path: Path,
) -> None:
    sim = start_sim(tmp_path / "sim", nodes=1, guests=1, extra_args=["--log-level", "INFO"])
    try:
        assert sim.ssh_port is not None
        settings = SshSettings(user="root", port=sim.ssh_port, key_path=Path(sim.ssh_private_key),
                               host_key_fingerprints=[sim.ssh_host_key_fingerprint], connect_timeout=5.0)
        host = HostConfig(node=sim.nodes[0], address=sim.host)
        pool = SshPool(settings, liveness=FAST)
        try:
            answered = await pool.run(host, "sleep 2.5; echo done", timeout=20)  # probes every second, answered
            assert answered.stdout == b"done\n"
            pattern = unique_sleep()
            # asyncssh logs each exec request at INFO: the command has reached the simulator.
            failure, elapsed = await _fails_while_frozen(pool, host, pattern, lambda: pattern in sim.proc.log_text(),
                                                         frozen([sim.proc.pid]))
            assert failure.code is ErrorCode.UNAVAILABLE and failure.info.retryable is False
            assert f"node {host.node} stopped answering over SSH" in failure.info.message
            assert elapsed < 20, elapsed
        finally:
            await pool.close()
    finally:
        sim.proc.stop()
