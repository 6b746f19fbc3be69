"""The audit chain in the PMCP_AUDIT stream (PMCP_STATE=jetstream, one real nats-server, real gateways): one chain
per gateway, checked within the stream by `proxmox-mcp audit verify`; a message deleted from the stream (also the
newest one) and a forged copy of a record are named; each gateway's own file holds the same chain."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from proxmox_mcp_gateway.state_names import AUDIT_STREAM

from tests.support.nats import NatsServer, start_nats
from tests.support.procs import wait_until
from tests.support.services import GatewayProc, start_gateway, write_private
from tests.support.shared_state import audit_records, cli, connected, jetstream_env, ready_body, rest_call


@dataclass
class ChainedStack:
    nats: NatsServer
    key: Path
    gateways: list[GatewayProc]
    workdir: Path

    def env(self, key: Path | None = None) -> dict[str, str]:
        return {"NATS_URL": self.nats.url, **jetstream_env(1), "PMCP_AUDIT_KEY_FILE": str(key or self.key)}

    def state_dir(self, gateway: GatewayProc) -> Path:
        return self.workdir / f"gateway-{gateway.base_url.rsplit(':', 1)[1]}-state"


def start_chained(workdir: Path, count: int) -> ChainedStack:
    nats = start_nats(workdir / "nats")
    key = write_private(workdir / "audit.key", secrets.token_hex(32) + "\n")  # one key for every gateway
    stack = ChainedStack(nats, key, [], workdir)
    try:
        for _ in range(count):
            gateway = start_gateway(nats.url, workdir, env=jetstream_env(1, PMCP_AUDIT_KEY_FILE=str(key)))
            stack.gateways.append(gateway)
            wait_until(lambda g=gateway: ready_body(g)[1]["checks"]["state"] == "ok", timeout=20,
                       what="state loaded", proc=gateway.proc)
    except BaseException:
        stop(stack)
        raise
    return stack


def stop(stack: ChainedStack) -> None:
    for gateway in stack.gateways:
        gateway.proc.stop()
    stack.nats.proc.stop()


def calls(stack: ChainedStack, per_gateway: int) -> None:
    """Concurrent calls on every gateway (no workers: each fails `unavailable` fast, and is audited)."""
    jobs = [(gateway, n) for gateway in stack.gateways for n in range(per_gateway)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda job: rest_call(job[0].base_url, job[0].token, "vm_status",
                                                      {"vmid": 100 + job[1]}), jobs))
    assert {reply.code for reply in replies} == {"unavailable"}, replies[0].body


def verify(stack: ChainedStack, *args: str, key: Path | None = None) -> tuple[int, list[str]]:
    result = cli("audit", "verify", *args, env=stack.env(key))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout.splitlines()


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainedStack]:
    stack = start_chained(tmp_path_factory.mktemp("chain-js"), 2)
    try:
        calls(stack, 20)
        yield stack
    finally:
        stop(stack)


async def test_each_gateway_has_its_own_chain_in_the_stream_and_verify_passes(two_gateways: ChainedStack) -> None:
    code, out = verify(two_gateways)
    assert code == 0, out
    assert out[0].startswith("audit stream verified: ") and "2 gateway chain(s)" in out[0], out
    async with connected(two_gateways.nats.url) as nc:
        in_stream = await audit_records(nc)
    chains = {record["chain"] for record in in_stream}
    assert len(chains) == 2 and len(in_stream) == 40
    for gateway in two_gateways.gateways:  # the same records, in chain order, in the gateway's own file
        audit = two_gateways.state_dir(gateway) / "audit.jsonl"
        in_file = [json.loads(line) for line in audit.read_text().splitlines()]
        assert [r["seq"] for r in in_file] == list(range(1, 21))
        assert sorted((r for r in in_stream if r["chain"] == in_file[0]["chain"]), key=lambda r: r["seq"]) == in_file
        file_check = cli("audit", "--file", str(audit), "verify", env=two_gateways.env())
        assert file_check.returncode == 0, file_check.stdout


def test_stream_verify_with_another_key_says_it_is_the_wrong_key(two_gateways: ChainedStack, tmp_path: Path) -> None:
    other = write_private(tmp_path / "other.key", secrets.token_hex(32))
    code, out = verify(two_gateways, key=other)
    assert code == 1 and sum("wrong key: the records were sealed with key id" in line for line in out) == 2, out


async def test_stream_verify_names_deleted_messages_and_forged_records(tmp_path: Path) -> None:
    stack = start_chained(tmp_path, 1)
    try:
        calls(stack, 6)
        assert verify(stack)[0] == 0
        async with connected(stack.nats.url) as nc:
            js = JetStreamContext(nc, timeout=5.0)
            assert await js.delete_msg(AUDIT_STREAM, 3)
            code, out = verify(stack)
            assert code == 1 and out[1].strip().startswith(
                f"stream seq 3: removed: stream message 3 was deleted from {AUDIT_STREAM}"), out
            assert "missing from the stream" in "\n".join(out) and "never stored" not in "\n".join(out), out
            assert await js.delete_msg(AUDIT_STREAM, 6)  # the newest: the stream keeps counting, so it shows
            code, out = verify(stack)
            assert code == 1 and "stream seq 6: removed: stream message 6 was deleted" in "\n".join(out), out
            original = (await js.get_msg(AUDIT_STREAM, 2)).data
            assert original is not None
            forged = original.replace(b'"result":"unavailable"', b'"result":"ok"')
            assert forged != original
            await js.publish("pmcp.audit.forger", forged)
            code, out = verify(stack)
            assert code == 1 and ("stream seq 7: edited: seq 2: its MAC does not match its content"
                                  in "\n".join(out)), out
    finally:
        stop(stack)
