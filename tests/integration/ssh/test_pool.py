"""SshPool against a real OpenSSH sshd: output, timeouts that kill, caps, trust, auth, reuse, reconnects."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import HostConfig, SshSettings
from proxmox_mcp_runtime.ssh import SshEvent, SshPool
from pydantic import SecretStr

from tests.support.procs import free_port, wait_until_async
from tests.support.sshd import SshdServer, remote_processes, wait_processes_gone

HOST = HostConfig(node="pve-test", address="127.0.0.1")
FIVE_MIB = 5 * 1024 * 1024


def settings_for(sshd: SshdServer, **overrides: Any) -> SshSettings:
    values: dict[str, Any] = {
        "user": sshd.user, "port": sshd.port, "key_path": sshd.ed25519_key, "known_hosts": sshd.known_hosts,
        "connect_timeout": 5.0,
    }
    values.update(overrides)
    return SshSettings(**values)


def unique_sleep() -> str:
    """A sleep duration no other test (or test session) uses, so ps can find exactly this process."""
    return f"60.{secrets.randbelow(10**6):06d}"


@pytest.fixture
async def pool(sshd: SshdServer) -> AsyncIterator[SshPool]:
    pool = SshPool(settings_for(sshd))
    try:
        yield pool
    finally:
        await pool.close()


async def failure_of(pool: SshPool, command: list[str], timeout: float = 10) -> ServiceFailure:
    with pytest.raises(ServiceFailure) as caught:
        await pool.run(HOST, command, timeout=timeout)
    return caught.value


# --- commands --------------------------------------------------------------------------------


async def test_stdout_stderr_and_exit_code_come_back_separately(pool: SshPool) -> None:
    out = await pool.run(HOST, ["ls", "-d", "/", "/no-such-dir"], timeout=10)
    assert out.stdout == b"/\n"
    assert b"/no-such-dir" in out.stderr
    assert out.exit_code == 2
    assert not out.truncated and not out.timed_out


async def test_argv_reaches_the_host_unchanged_by_the_shell(pool: SshPool) -> None:
    argv = ["printf", "%s|", "a b", "$(id)", "it's", "*", ";"]
    out = await pool.run(HOST, argv, timeout=10)
    assert out.stdout == b"a b|$(id)|it's|*|;|"


async def test_nonzero_exit_codes_are_reported(pool: SshPool) -> None:
    assert (await pool.run(HOST, ["false"], timeout=10)).exit_code == 1
    assert (await pool.run(HOST, ["true"], timeout=10)).exit_code == 0


async def test_timeout_returns_in_about_the_timeout_and_the_remote_process_is_gone(pool: SshPool) -> None:
    marker = unique_sleep()
    started = time.monotonic()
    failure = await failure_of(pool, ["sleep", marker], timeout=2)
    elapsed = time.monotonic() - started
    assert failure.code is ErrorCode.TIMEOUT
    assert "did not finish within 2s" in failure.info.message
    assert 1.5 < elapsed < 10
    wait_processes_gone(f"sleep {marker}", timeout=8)


async def test_timeout_kills_the_process_also_without_the_remote_wrapper(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd), remote_timeout=False)
    try:
        marker = unique_sleep()
        failure = await failure_of(pool, ["sleep", marker], timeout=1)
        assert failure.code is ErrorCode.TIMEOUT
        wait_processes_gone(f"sleep {marker}", timeout=8)
    finally:
        await pool.close()


async def test_timeout_can_return_partial_output_instead_of_raising(pool: SshPool) -> None:
    out = await pool.run(HOST, ["sh", "-c", "echo started; exec sleep 30"], timeout=1, raise_on_timeout=False)
    assert out.timed_out and out.exit_code is None
    assert out.stdout == b"started\n"


async def test_cancelling_a_call_stops_the_remote_process(pool: SshPool) -> None:
    marker = unique_sleep()
    task = asyncio.create_task(pool.run(HOST, ["sleep", marker], timeout=60))
    await wait_until_async(lambda: remote_processes(f"sleep {marker}"), timeout=10, what="the remote sleep")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    wait_processes_gone(f"sleep {marker}", timeout=8)


async def test_five_mib_of_output_is_capped_and_the_rest_discarded(pool: SshPool) -> None:
    out = await pool.run(HOST, ["seq", "1", "1000000"], timeout=30)  # 6.9 MB
    assert out.truncated
    assert len(out.stdout) == 1024 * 1024  # SshSettings.max_output_bytes default
    assert out.stdout.startswith(b"1\n2\n3\n")
    assert out.exit_code == 0  # the command ran to its end: the remainder was read, not left blocking it


async def test_cap_applies_to_stdout_and_stderr_combined(pool: SshPool) -> None:
    command = ["sh", "-c", "head -c 3000 /dev/zero; head -c 3000 /dev/zero >&2"]
    out = await pool.run(HOST, command, timeout=10, max_output=4096)
    assert out.truncated
    assert len(out.stdout) + len(out.stderr) == 4096


async def test_command_reading_stdin_gets_eof_instead_of_hanging(pool: SshPool) -> None:
    out = await pool.run(HOST, ["cat"], timeout=10)
    assert out.exit_code == 0 and out.stdout == b""


async def test_probe_measures_a_round_trip(pool: SshPool) -> None:
    seconds = await pool.probe(HOST)
    assert 0 < seconds < 5


# --- connection reuse and reconnects ----------------------------------------------------------


async def test_pool_reuses_one_connection_across_calls(sshd: SshdServer, pool: SshPool) -> None:
    before = sshd.accepted_logins()
    for _ in range(5):
        await pool.run(HOST, ["true"], timeout=10)
    assert sshd.accepted_logins() - before == 1
    assert pool.stats.connects == 1 and pool.connections_open == 1


async def test_concurrent_first_calls_make_one_connection(sshd: SshdServer, pool: SshPool) -> None:
    before = sshd.accepted_logins()
    outputs = await asyncio.gather(*(pool.run(HOST, ["echo", str(i)], timeout=10) for i in range(6)))
    assert [o.stdout for o in outputs] == [f"{i}\n".encode() for i in range(6)]
    assert sshd.accepted_logins() - before == 1


async def test_more_concurrent_commands_than_sshd_sessions_all_run(sshd: SshdServer, pool: SshPool) -> None:
    outputs = await asyncio.gather(*(pool.run(HOST, ["sleep", "0.3"], timeout=20) for _ in range(14)))
    assert all(o.exit_code == 0 for o in outputs)


async def test_pool_reconnects_after_sshd_restarts_on_the_same_port(sshd: SshdServer) -> None:
    events: list[SshEvent] = []
    pool = SshPool(settings_for(sshd), on_event=events.append)
    try:
        await pool.run(HOST, ["true"], timeout=10)
        sshd.restart()
        out = await pool.run(HOST, ["echo", "back"], timeout=10)
        assert out.stdout == b"back\n"
        assert pool.stats.reconnects == 1
        assert [e.reconnect for e in events if e.kind == "connect"] == [False, True]
    finally:
        await pool.close()


async def test_stopped_sshd_gives_retryable_unavailable_then_recovers(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd))
    try:
        await pool.run(HOST, ["true"], timeout=10)
        sshd.stop()
        try:
            failure = await failure_of(pool, ["true"])
            assert failure.code is ErrorCode.UNAVAILABLE
            assert failure.info.retryable
            assert "pve-test" in failure.info.message
        finally:
            sshd.restart()
        assert (await pool.run(HOST, ["true"], timeout=10)).exit_code == 0
    finally:
        await pool.close()


async def test_closed_port_is_unavailable_quickly(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd, port=free_port()))
    try:
        started = time.monotonic()
        failure = await failure_of(pool, ["true"])
        assert failure.code is ErrorCode.UNAVAILABLE and failure.info.retryable
        assert "refused the SSH connection" in failure.info.message
        assert time.monotonic() - started < 2
    finally:
        await pool.close()


async def test_unroutable_host_is_unavailable_within_the_connect_timeout(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd, connect_timeout=1.0))
    try:
        started = time.monotonic()
        with pytest.raises(ServiceFailure) as caught:
            await pool.run(HostConfig(node="far", address="192.0.2.1"), ["true"], timeout=5)
        assert caught.value.code is ErrorCode.UNAVAILABLE and caught.value.info.retryable
        assert time.monotonic() - started < 5
    finally:
        await pool.close()


async def test_event_loop_keeps_running_during_a_long_command(pool: SshPool) -> None:
    await pool.run(HOST, ["true"], timeout=10)  # connected: what follows measures commands only
    long_call = asyncio.create_task(pool.run(HOST, ["sleep", "2"], timeout=10))
    worst_lag = 0.0
    started = time.monotonic()
    quick = await pool.run(HOST, ["echo", "meanwhile"], timeout=10)
    quick_done = time.monotonic() - started
    while not long_call.done():
        tick = time.monotonic()
        await asyncio.sleep(0.01)
        worst_lag = max(worst_lag, time.monotonic() - tick - 0.01)
    assert (await long_call).exit_code == 0
    assert quick.stdout == b"meanwhile\n" and quick_done < 1.5
    assert worst_lag < 0.25


# --- host keys -------------------------------------------------------------------------------


async def test_unknown_host_key_is_refused_naming_its_fingerprint(sshd: SshdServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    pool = SshPool(settings_for(sshd, known_hosts=empty))
    try:
        failure = await failure_of(pool, ["true"])
        assert failure.code is ErrorCode.PERMISSION_DENIED and not failure.info.retryable
        assert "host key for pve-test is unknown" in failure.info.message
        assert sshd.host_key_fingerprint in failure.info.message
    finally:
        await pool.close()


async def test_changed_host_key_is_refused(sshd: SshdServer, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    pool = SshPool(settings_for(sshd, known_hosts=known, accept_unknown_host_keys=True))
    try:
        failure = await failure_of(pool, ["true"])
        assert failure.code is ErrorCode.PERMISSION_DENIED
        assert "host key for pve-test does not match the pinned key" in failure.info.message
        assert sshd.host_key_fingerprint in failure.info.message
    finally:
        await pool.close()


async def test_pinned_fingerprint_alone_is_enough(sshd: SshdServer, tmp_path: Path) -> None:
    pool = SshPool(settings_for(sshd, known_hosts=tmp_path / "absent",
                                host_key_fingerprints=[sshd.host_key_fingerprint]))
    try:
        assert (await pool.run(HOST, ["true"], timeout=10)).exit_code == 0
    finally:
        await pool.close()


async def test_wrong_pinned_fingerprint_is_refused(sshd: SshdServer, tmp_path: Path) -> None:
    pool = SshPool(settings_for(sshd, known_hosts=tmp_path / "absent",
                                host_key_fingerprints=["SHA256:" + "A" * 43]))
    try:
        failure = await failure_of(pool, ["true"])
        assert "does not match the pinned key" in failure.info.message
    finally:
        await pool.close()


async def test_unknown_host_key_is_accepted_only_in_demo_mode(sshd: SshdServer, tmp_path: Path) -> None:
    pool = SshPool(settings_for(sshd, known_hosts=tmp_path / "absent", accept_unknown_host_keys=True))
    try:
        assert (await pool.run(HOST, ["true"], timeout=10)).exit_code == 0
    finally:
        await pool.close()


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["rsa_key", "ecdsa_key"])
async def test_rsa_and_ecdsa_keys_log_in(sshd: SshdServer, key: str) -> None:
    pool = SshPool(settings_for(sshd, key_path=getattr(sshd, key)))
    try:
        assert (await pool.run(HOST, ["whoami"], timeout=10)).stdout == f"{sshd.user}\n".encode()
    finally:
        await pool.close()


async def test_encrypted_key_with_the_right_passphrase_logs_in(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd, key_path=sshd.encrypted_key, key_passphrase=SecretStr(sshd.passphrase)))
    try:
        assert (await pool.run(HOST, ["true"], timeout=10)).exit_code == 0
    finally:
        await pool.close()


@pytest.mark.parametrize(("passphrase", "expected"), [(None, "encrypted but no passphrase"), ("wrong", "is wrong")])
async def test_encrypted_key_without_the_right_passphrase_is_a_clear_error(
    sshd: SshdServer, passphrase: str | None, expected: str
) -> None:
    settings = settings_for(sshd, key_path=sshd.encrypted_key,
                            key_passphrase=SecretStr(passphrase) if passphrase else None)
    pool = SshPool(settings)
    try:
        failure = await failure_of(pool, ["true"])
        assert failure.code is ErrorCode.UNAVAILABLE and not failure.info.retryable
        assert expected in failure.info.message
        assert sshd.passphrase not in failure.info.message
    finally:
        await pool.close()


async def test_world_readable_key_is_refused_with_the_chmod_fix(sshd: SshdServer, tmp_path: Path) -> None:
    loose = tmp_path / "id_loose"
    shutil.copy(sshd.ed25519_key, loose)
    loose.chmod(0o644)
    before = sshd.accepted_logins()
    pool = SshPool(settings_for(sshd, key_path=loose))
    try:
        failure = await failure_of(pool, ["true"])
        assert f"chmod 600 {loose}" in failure.info.message
        assert sshd.accepted_logins() == before
    finally:
        await pool.close()


async def test_password_login_works_without_a_key(sshd: SshdServer) -> None:
    pool = SshPool(settings_for(sshd, key_path=None, password=SecretStr(sshd.password)))
    try:
        assert (await pool.run(HOST, ["whoami"], timeout=10)).stdout == f"{sshd.user}\n".encode()
    finally:
        await pool.close()


async def test_password_is_the_fallback_when_the_key_is_not_authorized(sshd: SshdServer, tmp_path: Path) -> None:
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    pool = SshPool(settings_for(sshd, key_path=stranger, password=SecretStr(sshd.password)))
    try:
        assert (await pool.run(HOST, ["true"], timeout=10)).exit_code == 0
    finally:
        await pool.close()


async def test_refused_login_is_an_upstream_error_without_the_password(sshd: SshdServer) -> None:
    bad = "bad-" + secrets.token_hex(8)
    pool = SshPool(settings_for(sshd, key_path=None, password=SecretStr(bad)))
    try:
        failure = await failure_of(pool, ["true"])
        assert failure.code is ErrorCode.UPSTREAM_ERROR and not failure.info.retryable
        assert "refused SSH login for user pmcptest" in failure.info.message
        assert bad not in failure.info.message
    finally:
        await pool.close()


# --- port forwarding (api-worker ssh-tunnel mode) --------------------------------------------


async def test_local_forward_tunnels_tcp_through_the_host(pool: SshPool) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo:" + await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    forward = await pool.forward_local(HOST, "127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_port)
        writer.write(b"hello\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), timeout=10) == b"echo:hello\n"
        writer.close()
    finally:
        await forward.aclose()
        server.close()
        await server.wait_closed()


async def test_many_concurrent_short_commands_share_one_connection_without_errors(sshd: SshdServer) -> None:
    # At sshd's MaxSessions (10) on purpose: refusals of sessions still closing must be retried, and the
    # connection must survive channels closing concurrently (paramiko's EOF-after-CLOSE race).
    pool = SshPool(settings_for(sshd), max_sessions_per_host=10)
    try:
        async def caller() -> list[int | None]:
            return [(await pool.run(HOST, ["true"], timeout=10)).exit_code for _ in range(30)]

        results = await asyncio.gather(*(caller() for _ in range(10)))
        assert all(code == 0 for codes in results for code in codes)
        assert pool.stats.connects == 1 and pool.stats.reconnects == 0
    finally:
        await pool.close()
