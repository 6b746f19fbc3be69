"""The real `proxmox-mcp-ssh-worker` process, over a real nats-server, against the real test sshd."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope, decode_error
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_contracts.subjects import ERROR_CODE_HEADER, ERROR_HEADER, SshOp, ssh_subject
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from tests.support.nats import NatsServer
from tests.support.procs import Proc, start_process, wait_until, wait_until_async
from tests.support.services import write_private
from tests.support.sshd import SshdServer, remote_processes, wait_processes_gone

WORKER = str(Path(sys.executable).parent / "proxmox-mcp-ssh-worker")
NODE = "pve-test"
EXEC_CALLER = Caller(token_id="test-exec", scope=Scope.EXEC, command_profile="readonly")
OPERATOR_CALLER = Caller(token_id="test-operator", scope=Scope.ADMIN, command_profile="admin")
MAX_COMMAND_TIMEOUT = 3


@dataclass
class WorkerSetup:
    main: str
    """Cluster with the encrypted key and a pinned host key."""
    untrusted: str
    """Same sshd, but an empty known_hosts: every host key is unknown."""
    loose_key: str
    """A private key readable by others."""
    config_path: Path
    workdir: Path
    proc: Proc


def _cluster(name: str, sshd: SshdServer, **ssh: Any) -> ClusterConfig:
    settings: dict[str, Any] = {"user": sshd.user, "port": sshd.port, "known_hosts": sshd.known_hosts,
                                "key_path": sshd.encrypted_key, "key_passphrase": SecretStr(sshd.passphrase),
                                "max_command_timeout": MAX_COMMAND_TIMEOUT, "connect_timeout": 5.0}
    settings.update(ssh)
    return ClusterConfig(name=name, hosts=[HostConfig(node=NODE, address="127.0.0.1")], ssh=SshSettings(**settings))


def start_worker(config_path: Path, workdir: Path, name: str, **env: str) -> Proc:
    proc = start_process(name, [WORKER], workdir, env={
        "NATS_URL": env.pop("NATS_URL"), "PMCP_CONFIG": str(config_path), "LOG_LEVEL": "INFO", **env,
    })
    wait_until(lambda: '"worker ready"' in proc.log_text(), timeout=30, what=f"{name} to be ready", proc=proc)
    return proc


@pytest.fixture(scope="module")
def worker(
    sshd: SshdServer, nats_server: NatsServer, thawed_control: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerSetup]:
    workdir = tmp_path_factory.mktemp("ssh-worker")
    suffix = secrets.token_hex(3)
    empty_known_hosts = workdir / "empty_known_hosts"
    empty_known_hosts.write_text("")
    loose = workdir / "id_loose"
    shutil.copy(sshd.ed25519_key, loose)
    loose.chmod(0o644)
    names = {"main": f"sshtest-{suffix}", "untrusted": f"sshtest-untrusted-{suffix}",
             "loose_key": f"sshtest-loose-{suffix}"}
    config = ProxmoxConfig(clusters=[
        _cluster(names["main"], sshd),
        _cluster(names["untrusted"], sshd, known_hosts=empty_known_hosts),
        _cluster(names["loose_key"], sshd, key_path=loose, key_passphrase=None),
    ])
    config_path = write_private(workdir / "clusters.toml", dump_config_toml(config))
    proc = start_worker(config_path, workdir, "ssh-worker", NATS_URL=nats_server.url)
    try:
        yield WorkerSetup(config_path=config_path, workdir=workdir, proc=proc, **names)
    finally:
        proc.stop()


async def call(nc: NatsClient, cluster: str, op: SshOp, args: dict[str, Any], *, caller: Caller = EXEC_CALLER,
               timeout: float = 30) -> dict[str, Any] | ErrorInfo:
    envelope = RequestEnvelope(op=op.value, cluster=cluster, args=args, deadline=time.time() + timeout, caller=caller)
    reply = await nc.request(ssh_subject(cluster, op), envelope.model_dump_json().encode(), timeout=timeout + 5)
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        return decode_error(headers.get(ERROR_CODE_HEADER), headers.get(ERROR_HEADER), reply.data)
    return ReplyEnvelope.model_validate_json(reply.data).result


async def run_ok(nc: NatsClient, cluster: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result = await call(nc, cluster, SshOp.EXEC, args, **kwargs)
    assert isinstance(result, dict), result
    return result


async def run_error(nc: NatsClient, cluster: str, args: dict[str, Any], **kwargs: Any) -> ErrorInfo:
    result = await call(nc, cluster, SshOp.EXEC, args, **kwargs)
    assert isinstance(result, ErrorInfo), result
    return result


def sessions_started(sshd: SshdServer) -> int:
    return sshd.log_text().count("Starting session: command")


# --- execute ---------------------------------------------------------------------------------


async def test_exec_returns_stdout_and_exit_code(worker: WorkerSetup, nc: NatsClient) -> None:
    result = await run_ok(nc, worker.main, {"command": "echo hello world"})
    assert result["stdout"] == "hello world\n"
    assert result["exit_code"] == 0 and result["stderr"] == "" and result["truncated"] is False
    assert result["node"] == NODE and result["command"] == "echo hello world"
    assert result["duration_ms"] > 0


async def test_exec_reports_stderr_and_nonzero_exit_separately(worker: WorkerSetup, nc: NatsClient) -> None:
    result = await run_ok(nc, worker.main, {"command": "ls -d / /no-such-dir", "node": NODE})
    assert result["stdout"] == "/\n"
    assert "/no-such-dir" in result["stderr"]
    assert result["exit_code"] == 2


async def test_five_mib_of_output_comes_back_capped_and_truncated(worker: WorkerSetup, nc: NatsClient) -> None:
    result = await run_ok(nc, worker.main, {"command": "seq 1 1000000"})
    assert result["truncated"] is True
    # Capped at 1 MiB by the pool, then kept under the NATS payload limit (PMCP_SSH_MAX_REPLY_BYTES).
    assert 700_000 < len(result["stdout"]) <= 1024 * 1024  # newlines double in JSON
    assert result["stdout"].startswith("1\n2\n3\n")
    assert result["exit_code"] == 0


async def test_timeout_two_ends_the_remote_process(worker: WorkerSetup, nc: NatsClient) -> None:
    marker = f"60.{secrets.randbelow(10**6):06d}"
    started = time.monotonic()
    error = await run_error(nc, worker.main, {"command": f"sleep {marker}", "timeout": 2}, caller=OPERATOR_CALLER)
    elapsed = time.monotonic() - started
    assert error.code is ErrorCode.TIMEOUT, error
    assert 1.5 < elapsed < 10
    wait_processes_gone(f"sleep {marker}")


async def test_timeout_is_capped_by_the_configured_maximum(worker: WorkerSetup, nc: NatsClient) -> None:
    marker = f"60.{secrets.randbelow(10**6):06d}"
    started = time.monotonic()
    error = await run_error(nc, worker.main, {"command": f"sleep {marker}", "timeout": 60}, caller=OPERATOR_CALLER)
    assert error.code is ErrorCode.TIMEOUT
    assert time.monotonic() - started < MAX_COMMAND_TIMEOUT + 5
    wait_processes_gone(f"sleep {marker}")


async def test_invalid_arguments_are_refused_naming_the_field(worker: WorkerSetup, nc: NatsClient) -> None:
    for args, field in (({"command": ""}, "command"), ({"command": "uptime", "timeout": 0}, "timeout"),
                        ({"command": "uptime", "colour": "red"}, "colour"), ({}, "command")):
        error = await run_error(nc, worker.main, args)
        assert error.code is ErrorCode.INVALID_ARGUMENT, (args, error)
        assert field in error.message, (args, error)


async def test_unknown_node_is_refused_naming_the_known_nodes(worker: WorkerSetup, nc: NatsClient) -> None:
    error = await run_error(nc, worker.main, {"command": "uptime", "node": "pve-nope"})
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert "pve-nope" in error.message and NODE in error.message


async def test_policy_refusal_comes_before_any_ssh_session(
    worker: WorkerSetup, nc: NatsClient, sshd: SshdServer
) -> None:
    before = sessions_started(sshd)
    for command in ("echo hi; id", "cat /etc/shadow | head", "rm -rf /", "echo $(id)"):
        error = await run_error(nc, worker.main, {"command": command})
        assert error.code is ErrorCode.POLICY_DENIED, (command, error)
        assert error.message.startswith("command refused by policy: "), error
    assert sessions_started(sshd) == before


async def test_caller_below_the_commands_scope_is_refused(worker: WorkerSetup, nc: NatsClient) -> None:
    reader = Caller(token_id="test-read", scope=Scope.READ, command_profile="readonly")
    error = await run_error(nc, worker.main, {"command": "uptime"}, caller=reader)
    assert error.code is ErrorCode.PERMISSION_DENIED
    assert "needs scope" in error.message


async def test_unknown_host_key_is_refused(worker: WorkerSetup, nc: NatsClient, sshd: SshdServer) -> None:
    error = await run_error(nc, worker.untrusted, {"command": "uptime"})
    assert error.code is ErrorCode.PERMISSION_DENIED
    assert f"host key for {NODE} is unknown" in error.message
    assert sshd.host_key_fingerprint in error.message


async def test_loose_key_permissions_are_refused_with_the_fix(worker: WorkerSetup, nc: NatsClient) -> None:
    error = await run_error(nc, worker.loose_key, {"command": "uptime"}, caller=OPERATOR_CALLER)  # an admin
    assert error.code is ErrorCode.UNAVAILABLE
    assert f"chmod 600 {worker.workdir / 'id_loose'}" in error.message
    assert "chmod 600" in worker.proc.log_text()  # said at start-up already
    # Callers below admin get the same answer without the host's file path.
    hidden = await run_error(nc, worker.loose_key, {"command": "uptime"})
    assert hidden.code is ErrorCode.UNAVAILABLE and "chmod 600 [path]" in hidden.message
    assert str(worker.workdir) not in hidden.message


async def test_probe_reports_the_connection(worker: WorkerSetup, nc: NatsClient) -> None:
    result = await call(nc, worker.main, SshOp.PROBE, {})
    assert isinstance(result, dict) and result["ok"] is True, result
    assert result["latency_ms"] > 0
    untrusted = await call(nc, worker.untrusted, SshOp.PROBE, {})
    assert isinstance(untrusted, dict) and untrusted["ok"] is False
    assert "permission_denied" in untrusted["detail"]


async def test_worker_reconnects_after_sshd_restarts(worker: WorkerSetup, nc: NatsClient, sshd: SshdServer) -> None:
    await run_ok(nc, worker.main, {"command": "uptime"})
    sshd.restart()
    result = await run_ok(nc, worker.main, {"command": "echo back"})
    assert result["stdout"] == "back\n"


# --- process life ----------------------------------------------------------------------------


async def test_sigterm_lets_the_in_flight_call_finish(
    worker: WorkerSetup, nc: NatsClient, nats_server: NatsServer, sshd: SshdServer
) -> None:
    cluster = f"sshtest-drain-{secrets.token_hex(3)}"
    config_path = write_private(worker.workdir / "drain.toml",
                                dump_config_toml(ProxmoxConfig(clusters=[_cluster(cluster, sshd)])))
    proc = start_worker(config_path, worker.workdir, "ssh-worker-drain", NATS_URL=nats_server.url,
                        PMCP_DRAIN_TIMEOUT="20")
    try:
        marker = f"1.{secrets.randbelow(10**6):06d}"  # under MAX_COMMAND_TIMEOUT
        pending = asyncio.create_task(
            run_ok(nc, cluster, {"command": f"sleep {marker}", "timeout": 30}, caller=OPERATOR_CALLER)
        )
        await wait_until_async(lambda: remote_processes(f"sleep {marker}"), timeout=15, what="the remote sleep")
        proc.popen.send_signal(signal.SIGTERM)
        result = await asyncio.wait_for(pending, timeout=30)
        assert result["exit_code"] == 0
        assert proc.popen.wait(timeout=15) == 0
        assert "draining" in proc.log_text()
    finally:
        proc.stop()


async def test_a_worker_serves_only_the_clusters_it_is_told_to(
    worker: WorkerSetup, nc: NatsClient, nats_server: NatsServer, sshd: SshdServer
) -> None:
    served, skipped = f"sshtest-a-{secrets.token_hex(3)}", f"sshtest-b-{secrets.token_hex(3)}"
    config = ProxmoxConfig(clusters=[_cluster(served, sshd), _cluster(skipped, sshd)])
    config_path = write_private(worker.workdir / "two.toml", dump_config_toml(config))
    proc = start_worker(config_path, worker.workdir, "ssh-worker-subset", NATS_URL=nats_server.url,
                        PMCP_SSH_CLUSTERS=served)
    try:
        assert isinstance(await call(nc, served, SshOp.PROBE, {}), dict)
        with pytest.raises(NoRespondersError):
            await call(nc, skipped, SshOp.PROBE, {}, timeout=2)
    finally:
        proc.stop()


def test_missing_config_file_stops_the_worker_with_a_clear_message(tmp_path: Path, nats_server: NatsServer) -> None:
    proc = start_process("ssh-worker-noconfig", [WORKER], tmp_path, env={
        "NATS_URL": nats_server.url, "PMCP_CONFIG": str(tmp_path / "absent.toml"),
    })
    assert proc.popen.wait(timeout=30) == 2
    lines = [json.loads(line) for line in proc.log_text().splitlines() if line.startswith("{")]
    assert any("absent.toml does not exist" in line.get("problem", "") for line in lines), proc.log_text()
