"""The kill switch on a single host (PMCP_STATE=local): one gateway keeps the switch in its state file and relays
it to the workers on NATS. Real nats-server, simulator, both workers and the gateway as processes; the official
MCP client, the admin endpoints and `proxmox-mcp freeze|thaw`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import nats
import pytest
from mcp import Client
from nats.aio.client import Client as NatsClient
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_runtime.config import dump_config_toml

from tests.integration.freeze.helpers import (
    admin_call,
    audit_records,
    direct_mutations,
    direct_reads,
    error_of,
    freeze_cli,
    health_freeze,
    is_frozen_refusal,
    is_unknown_refusal,
    mutating_calls,
    reading_calls,
    until,
    vm_action_refused,
)
from tests.integration.gateway.conftest import FAST, sim_dict
from tests.support.control import direct
from tests.support.mcp_client import SimClient, http_client
from tests.support.nats import NatsServer, start_nats
from tests.support.procs import Proc
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, start_sim

WORKERS = ("ssh-worker", "api-worker")


@dataclass
class LocalStack:
    workdir: Path
    nats: NatsServer
    sim: SimInfo
    config_path: Path
    state_dir: Path
    gateway: GatewayProc
    vm: dict[str, Any]
    ct: dict[str, Any]

    @property
    def cli_env(self) -> dict[str, str]:
        """What an operator's shell on the host has: the gateway's state dir."""
        return {"PMCP_STATE": "local", "PMCP_STATE_DIR": str(self.state_dir), "NATS_URL": self.nats.url}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("freeze-local")
    procs: list[Proc] = []
    try:
        nats_server = start_nats(workdir / "nats")
        procs.append(nats_server.proc)
        sim = start_sim(workdir / "sim", task_duration=0.2)
        procs.append(sim.proc)
        config_path = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_dict(sim))))
        procs += [start_worker(kind, nats_server.url, config_path, workdir, env=FAST) for kind in WORKERS]
        state_dir = workdir / "state"
        gateway = start_gateway(nats_server.url, workdir, env={**FAST, "PMCP_STATE_DIR": str(state_dir)})
        procs.append(gateway.proc)
        wait_ready(gateway)
        with SimClient(sim_dict(sim)) as reader:
            guests = [g for g in reader.guests() if not g.get("template")]
        vm = next(g for g in guests if g["type"] == "qemu" and g["status"] == "running")
        ct = next(g for g in guests if g["type"] == "lxc" and g["status"] == "running")
        yield LocalStack(workdir=workdir, nats=nats_server, sim=sim, config_path=config_path, state_dir=state_dir,
                         gateway=gateway, vm=vm, ct=ct)
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def thawed(stack: LocalStack) -> LocalStack:
    """Each test starts with the deployment thawed."""
    thaw = admin_call(stack.gateway, "thaw", "test starts thawed")
    assert thaw.status_code == 200, thaw.text
    return stack


@pytest.fixture
async def nc(stack: LocalStack) -> AsyncIterator[NatsClient]:
    connection = await nats.connect(stack.nats.url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_freeze_from_the_cli_refuses_every_call_above_read_within_a_second_while_reads_go_on(
    thawed: LocalStack
) -> None:
    stack = thawed
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        await until(lambda: _works(client, stack.vm), within=10, what="vm_action working before the freeze")
        done = freeze_cli("freeze", "disk array replacement", stack.cli_env)
        assert done.returncode == 0, done.stderr
        assert "frozen: every call above read scope is refused" in done.stdout
        assert "recorded in the audit by a gateway" in done.stdout, (done.stdout, done.stderr)
        took = await until(lambda: _refused(client, stack.vm), within=1.0, what="vm_action refused")
        for tool, args in mutating_calls(stack.vm, stack.ct):
            error = error_of(await client.call_tool(tool, args))
            assert is_frozen_refusal(error), (tool, args, error)
            assert error is not None and "disk array replacement" in error["message"]
            assert error["details"]["by"].startswith("cli:"), error
        for tool, args in reading_calls(stack.vm):
            result = await client.call_tool(tool, args)
            assert not result.is_error, (tool, result.content)
        freeze = health_freeze(stack.gateway)
        assert freeze["state"] == "frozen" and freeze["via"] == "cli" and freeze["reason"] == "disk array replacement"
        assert freeze["by"].startswith("cli:") and freeze["at"]
        refusals = [r for r in audit_records(stack.state_dir) if r.get("tool") == "vm_action"
                    and r.get("result") == "permission_denied"]
        assert refusals and "frozen" in refusals[-1]["decision"]["reason"]
        print(f"local mode: a CLI freeze refused vm_action on the gateway {took * 1000:.0f} ms after the CLI returned")


async def test_workers_refuse_requests_sent_straight_to_their_subjects_while_frozen_and_serve_reads(
    thawed: LocalStack, nc: NatsClient
) -> None:
    stack = thawed
    frozen = admin_call(stack.gateway, "freeze", "incident 4711")
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["freeze"]["state"] == "frozen"
    for kind, op, args in direct_mutations(stack.vm):
        answer = await direct(nc, kind, op, args)
        assert isinstance(answer, ErrorInfo) and is_frozen_refusal(answer), (op, answer)
        assert "incident 4711" in answer.message
    for kind, op, args in direct_reads(stack.vm):
        answer = await direct(nc, kind, op, args)
        assert isinstance(answer, dict), (op, answer)
    assert admin_call(stack.gateway, "thaw", "incident 4711 over").status_code == 200
    vm_action = direct_mutations(stack.vm)[0]
    took = await until(lambda: _direct_works(nc, *vm_action), within=1.0, what="the worker serving vm_action again")
    print(f"local mode: the api-worker served vm_action {took * 1000:.0f} ms after the thaw's reply")


async def test_a_thaw_restores_calls_above_read_and_every_change_is_audited_once_with_who_and_when(
    thawed: LocalStack
) -> None:
    stack = thawed
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        before = len(audit_records(stack.state_dir, event="freeze"))
        assert admin_call(stack.gateway, "freeze", "maintenance window").status_code == 200
        assert is_frozen_refusal(await vm_action_refused(client, stack.vm))
        done = freeze_cli("thaw", "maintenance done", stack.cli_env)
        assert done.returncode == 0, done.stderr
        assert "thawed: calls above read work again" in done.stdout
        took = await until(lambda: _works(client, stack.vm), within=1.0, what="vm_action working after the thaw")
        assert health_freeze(stack.gateway)["state"] == "thawed"
        freezes = audit_records(stack.state_dir, event="freeze")[before:]
        assert [r["reason"] for r in freezes] == ["maintenance window"]
        assert freezes[0]["token_id"] == "static" and freezes[0]["transport"] == "rest" and freezes[0]["via"] == "rest"
        assert freezes[0]["client"] == "127.0.0.1" and freezes[0]["at"] and freezes[0]["ts"]
        thaw = audit_records(stack.state_dir, event="thaw")[-1]
        assert thaw["reason"] == "maintenance done" and thaw["by"].startswith("cli:") and thaw["via"] == "cli"
        seqs = [r["seq"] for r in audit_records(stack.state_dir) if r.get("event") in ("freeze", "thaw")]
        assert len(seqs) == len(set(seqs)), "a change was audited twice"
        print(f"local mode: vm_action worked {took * 1000:.0f} ms after the CLI thaw returned")


async def test_freezing_takes_an_admin_token_and_a_one_line_reason_and_refusals_are_audited(
    thawed: LocalStack
) -> None:
    stack = thawed
    async with http_client(stack.gateway.url, stack.gateway.token) as client:
        done = _cli("token", "create", "--name", "freeze-operator", "--scope", "operate", "--json",
                    env=stack.cli_env)
        operator = json.loads(done.stdout)["token"]
        refused = admin_call(stack.gateway, "freeze", "not mine to freeze", token=operator)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "permission_denied"
        assert "freeze needs scope admin" in refused.json()["error"]["message"]
        assert audit_records(stack.state_dir, event="freeze_refused")[-1]["result"] == "permission_denied"
        for reason in ("", "two\nlines", 42, "x" * 501):
            bad = admin_call(stack.gateway, "freeze", reason)
            assert bad.status_code == 400, (reason, bad.text)
        anonymous = httpx2.post(f"{stack.gateway.base_url}/api/admin/freeze", json={"reason": "who am I"}, timeout=5)
        assert anonymous.status_code == 401
        empty = freeze_cli("freeze", "   ", stack.cli_env)
        assert empty.returncode == 2 and "a reason is required" in empty.stderr
        assert health_freeze(stack.gateway)["state"] == "thawed"
        assert not error_of(await client.call_tool("vm_action", {"vmid": stack.vm["vmid"], "node": stack.vm["node"],
                                                                  "action": "start"}))


async def test_a_worker_that_hears_no_gateway_refuses_everything_above_read_and_still_serves_reads(
    stack: LocalStack, tmp_path: Path
) -> None:
    lonely = start_nats(tmp_path / "nats")
    procs: list[Proc] = [lonely.proc]
    try:
        procs += [start_worker(kind, lonely.url, stack.config_path, tmp_path, env=FAST) for kind in WORKERS]
        connection = await nats.connect(lonely.url)
        try:
            await until(lambda: _direct_ok(connection, *direct_reads(stack.vm)[0]), within=15,
                        what="the lonely api-worker answering")
            for kind, op, args in direct_mutations(stack.vm):
                answer = await direct(connection, kind, op, args)
                assert isinstance(answer, ErrorInfo) and is_unknown_refusal(answer), (op, answer)
                assert answer.retryable and "no gateway answered" in answer.message
            for kind, op, args in direct_reads(stack.vm):
                assert isinstance(await direct(connection, kind, op, args), dict), op
            # A gateway arrives: it relays the switch (thawed) and the workers serve changes again.
            gateway = start_gateway(lonely.url, tmp_path, env={**FAST, "PMCP_STATE_DIR": str(tmp_path / "state")})
            procs.append(gateway.proc)
            vm_action = direct_mutations(stack.vm)[0]
            await until(lambda: _direct_works(connection, *vm_action), within=10,
                        what="the worker serving vm_action once a gateway relays the switch")
        finally:
            await connection.close()
    finally:
        for proc in reversed(procs):
            proc.stop()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env}, check=False)
    assert done.returncode == 0, done.stderr
    return done


async def _works(client: Client, vm: dict[str, Any]) -> bool:
    return await vm_action_refused(client, vm) is None


async def _refused(client: Client, vm: dict[str, Any]) -> bool:
    return is_frozen_refusal(await vm_action_refused(client, vm))


async def _direct_works(nc: NatsClient, kind: Any, op: Any, args: dict[str, Any]) -> bool:
    return isinstance(await direct(nc, kind, op, args), dict)


async def _direct_ok(nc: NatsClient, kind: Any, op: Any, args: dict[str, Any]) -> bool:
    try:
        return isinstance(await direct(nc, kind, op, args, timeout=2), dict)
    except Exception:
        return False
