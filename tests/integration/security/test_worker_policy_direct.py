"""The ssh-worker enforces the command policy itself: attacks sent straight to its NATS subject, bypassing the
gateway, are refused before any SSH connection or channel is opened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import nats
import nats.errors
import pytest
from proxmox_mcp_contracts.envelope import Caller, RequestEnvelope, Scope, decode_error
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_contracts.subjects import ERROR_CODE_HEADER, ERROR_HEADER, SshOp, ssh_subject
from proxmox_mcp_runtime.config import dump_config_toml

from tests.support.nats import NatsServer
from tests.support.procs import Proc, wait_until
from tests.support.services import start_worker, write_private
from tests.support.sshd import SshdServer, start_sshd
from tests.unit.runtime.command_policy.attack_table import ATTACKS


@pytest.fixture(scope="module")
def direct_worker(
    nats_server: NatsServer, thawed_control: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proc, SshdServer]]:
    workdir = tmp_path_factory.mktemp("direct-worker")
    sshd = start_sshd(workdir / "sshd")
    try:
        cluster = ClusterConfig(name="direct", hosts=[HostConfig(node="pve1", address="127.0.0.1", port=sshd.port)],
                                ssh=SshSettings(user=sshd.user, key_path=sshd.ed25519_key,
                                                known_hosts=sshd.known_hosts))
        config = write_private(workdir / "clusters.toml", dump_config_toml(ProxmoxConfig(clusters=[cluster])))
        worker = start_worker("ssh-worker", nats_server.url, config, workdir, name="direct-ssh-worker")
        try:
            yield worker, sshd
        finally:
            worker.stop()
    finally:
        sshd.close()


async def _exec(nats_url: str, command: str, caller: Caller) -> tuple[str | None, bytes, dict[str, str]]:
    nc = await nats.connect(nats_url)
    try:
        envelope = RequestEnvelope(op="exec", cluster="direct", args={"command": command, "timeout": 5},
                                   deadline=time.time() + 10, caller=caller)
        deadline = time.monotonic() + 20
        while True:  # the worker may still be registering
            try:
                msg = await nc.request(ssh_subject("direct", SshOp.EXEC), envelope.model_dump_json().encode(),
                                       timeout=10)
                break
            except nats.errors.NoRespondersError:
                assert time.monotonic() < deadline, "the ssh-worker never registered"
                await asyncio.sleep(0.05)
        headers = msg.headers or {}
        return headers.get(ERROR_CODE_HEADER), msg.data, headers
    finally:
        await nc.close()


async def test_every_attack_sent_straight_to_the_worker_is_refused_before_ssh(
    direct_worker: tuple[Proc, SshdServer], nats_server: NatsServer
) -> None:
    worker, sshd = direct_worker
    caller = Caller(token_id="attacker", scope=Scope.EXEC, command_profile="readonly")
    logins_before = sshd.accepted_logins()
    refused = 0
    for attack in ATTACKS:
        if "\x00" in attack.command:
            continue  # not representable in the JSON argument model: refused at validation instead
        code, body, headers = await _exec(nats_server.url, attack.command, caller)
        assert code in {"policy_denied", "invalid_argument"}, (attack, code, body[:200])
        info = decode_error(code, headers.get(ERROR_HEADER), body)
        if code == "policy_denied":
            assert "policy" in info.message, info.message
            refused += 1
    assert refused >= 60
    assert sshd.accepted_logins() == logins_before, "an attack reached the SSH host"
    assert worker.alive()


async def test_an_allowed_command_does_reach_the_host_through_the_same_worker(
    direct_worker: tuple[Proc, SshdServer], nats_server: NatsServer
) -> None:
    _, sshd = direct_worker
    caller = Caller(token_id="reader", scope=Scope.EXEC, command_profile="readonly")
    code, body, _ = await _exec(nats_server.url, "whoami", caller)
    assert code is None, body[:300]
    assert sshd.user.encode() in body
    wait_until(lambda: sshd.accepted_logins() >= 1, timeout=5, what="the sshd log to show the login")




async def test_a_refusal_quotes_the_callers_own_path_to_a_non_admin(
    direct_worker: tuple[Proc, SshdServer], nats_server: NatsServer
) -> None:
    caller = Caller(token_id="reader", scope=Scope.EXEC, command_profile="readonly")
    code, body, headers = await _exec(nats_server.url, "cat /etc/pve/priv/authkey.key", caller)
    info = decode_error(code, headers.get(ERROR_HEADER), body)
    assert code == "policy_denied" and "'/etc/pve/priv/authkey.key' is refused" in info.message, info.message
