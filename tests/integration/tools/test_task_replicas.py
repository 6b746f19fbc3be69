"""Tasks and idempotency keys live in the shared state, not in a gateway: a second replica (JetStream KV on the
stack's NATS, one replica) answers a task and a key the first one created, and a gateway restarted on the same
state directory (local state) answers the tasks of its previous life."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_types import CallToolResult

from tests.integration.tools.helpers import FAST, ToolsStack, call_ok
from tests.support.mcp_client import http_client
from tests.support.mcp_tasks import CreateTaskResult, TasksClient, call_for_task, get_task, until_done
from tests.support.services import GatewayProc, start_gateway, wait_ready
from tests.support.sim import reset_sim


@pytest.fixture(autouse=True)
def fresh_beta(tools_stack: ToolsStack) -> Iterator[None]:
    yield
    reset_sim(tools_stack.beta)


def gateway(stack: ToolsStack, workdir: Path, token: str, **env: str) -> GatewayProc:
    started = start_gateway(stack.nats_url, workdir, token=token,
                            env={**FAST, "PMCP_CONFIG": str(stack.config_path), **env})
    wait_ready(started)
    return started


async def test_a_second_replica_answers_a_task_and_a_key_the_first_one_made(tools_stack: ToolsStack,
                                                                           tmp_path: Path) -> None:
    token = "replica-" + os.urandom(12).hex()
    shared = {"PMCP_STATE": "jetstream", "PMCP_STATE_REPLICAS": "1"}
    first = gateway(tools_stack, tmp_path, token, PMCP_STATE_DIR=str(tmp_path / "one"), **shared)
    second = gateway(tools_stack, tmp_path, token, PMCP_STATE_DIR=str(tmp_path / "two"), **shared)
    try:
        vm = tools_stack.first_guest("beta", "qemu", "stopped")
        running = tools_stack.first_guest("beta", "qemu", "running")
        key = str(uuid.uuid4())
        stop = {"vmid": running["vmid"], "action": "stop", "confirm": True, "cluster": "beta",
                "idempotency_key": key}
        async with http_client(first.url, token, extensions=[TasksClient()]) as one:
            created = await call_for_task(one, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                             "cluster": "beta"})
            stopped = await call_ok(one, "vm_action", stop)
        assert isinstance(created, CreateTaskResult)
        async with http_client(second.url, token, extensions=[TasksClient()]) as two:
            assert (await get_task(two.session, created.task_id)).task_id == created.task_id
            done = await until_done(two.session, created.task_id)
            again = await call_ok(two, "vm_action", stop)
        assert done.status == "completed" and done.result is not None
        assert not CallToolResult.model_validate(done.result).is_error
        assert again["upid"] == stopped["upid"]
        with tools_stack.sim("beta") as sim:
            assert len([t for t in sim.get("/cluster/tasks")
                        if t.get("type") == "qmstop" and t.get("id") == str(running["vmid"])]) == 1
        async with http_client(first.url, token, extensions=[TasksClient()]) as one:  # the same final answer
            assert (await get_task(one.session, created.task_id)).result == done.result
    finally:
        second.proc.stop()
        first.proc.stop()


async def test_a_restarted_gateway_answers_the_tasks_of_its_previous_life(tools_stack: ToolsStack,
                                                                         tmp_path: Path) -> None:
    token = "restart-" + os.urandom(12).hex()
    state = {"PMCP_STATE": "local", "PMCP_STATE_DIR": str(tmp_path / "state")}
    before = gateway(tools_stack, tmp_path, token, **state)
    try:
        vm = tools_stack.first_guest("beta", "qemu", "stopped")
        async with http_client(before.url, token, extensions=[TasksClient()]) as client:
            created = await call_for_task(client, "vm_action", {"vmid": vm["vmid"], "action": "start",
                                                                "wait": True, "cluster": "beta"})
        assert isinstance(created, CreateTaskResult)
    finally:
        before.proc.stop()
    after = gateway(tools_stack, tmp_path, token, **state)
    try:
        async with http_client(after.url, token, extensions=[TasksClient()]) as client:
            done = await until_done(client.session, created.task_id)
        assert done.status == "completed" and done.result is not None
        structured = CallToolResult.model_validate(done.result).structured_content
        assert structured is not None and structured["task"]["exitstatus"] == "OK"
        assert tools_stack.guest_status("beta", vm["vmid"]) == "running"
    finally:
        after.proc.stop()
