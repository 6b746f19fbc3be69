"""Long tasks: wait with progress notifications, wait_task, the wait timeout, and cancelling mid-wait (on beta,
whose simulated tasks take 1.5 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.tools.helpers import BETA_TASK_SECONDS, ToolsStack, call_error, call_ok
from tests.support.mcp_client import http_client
from tests.support.procs import wait_until
from tests.support.sim import reset_sim


@pytest.fixture(autouse=True)
def fresh_beta(tools_stack: ToolsStack) -> Iterator[None]:
    """Each test starts from beta's seeded state (no waiting for stop tasks to clean up)."""
    yield
    reset_sim(tools_stack.beta)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_waiting_sends_progress_with_status_and_log_line_before_the_result(tools_stack: ToolsStack,
                                                                                mode: str) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    seen: list[tuple[float, float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress, message))

    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode=mode) as client:
        started = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True,
                                                      "cluster": "beta"}, progress_callback=on_progress)
        finished = time.monotonic()
        assert started["waited"] is True and started["task"]["status"] == "stopped" and started["task"]["ok"]
        assert started["task"]["log_tail"], "the finished task carries its log tail"
        assert tools_stack.guest_status("beta", vm["vmid"]) == "running"
        before_result = [s for s in seen if s[0] < finished]
        assert len(before_result) >= 2, seen
        assert [p for _, p, _ in seen] == sorted(p for _, p, _ in seen)  # progress only grows
        assert any(m and m.startswith("task running") for _, _, m in seen), seen
        assert seen[-1][2] == "task finished: OK"


async def test_without_wait_the_upid_comes_at_once_and_wait_task_follows_it(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        began = time.monotonic()
        started = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "cluster": "beta"})
        assert time.monotonic() - began < BETA_TASK_SECONDS
        assert started["waited"] is False and started["task"] is None and started["upid"].startswith("UPID:")
        progress: list[str | None] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(message)

        task = await call_ok(client, "wait_task", {"upid": started["upid"], "cluster": "beta"},
                             progress_callback=on_progress)
        assert task["status"] == "stopped" and task["ok"] is True and task["upid"] == started["upid"]
        assert progress and progress[-1] == "task finished: OK"
        # A finished task answers at once.
        again = await call_ok(client, "wait_task", {"upid": started["upid"], "cluster": "beta"})
        assert again["exitstatus"] == "OK"


async def test_a_wait_past_its_timeout_says_the_task_goes_on(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        started = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "cluster": "beta"})
        code, text = await call_error(client, "wait_task", {"upid": started["upid"], "cluster": "beta",
                                                             "timeout": 1})
        assert code == "timeout" and "goes on in Proxmox" in text and started["upid"] in text
        code, _ = await call_error(client, "wait_task", {"upid": "UPID:not-a-upid", "cluster": "beta"})
        assert code == "invalid_argument"
        await call_ok(client, "wait_task", {"upid": started["upid"], "cluster": "beta"})


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_cancelling_mid_wait_returns_promptly_and_the_task_finishes_in_proxmox(tools_stack: ToolsStack,
                                                                                    mode: str) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "stopped")
    first_progress = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_progress.set()

    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode=mode) as client:
        call = asyncio.create_task(client.call_tool(
            "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True, "cluster": "beta"},
            progress_callback=on_progress))
        await asyncio.wait_for(first_progress.wait(), timeout=10)
        cancelled_at = time.monotonic()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert time.monotonic() - cancelled_at < 1.0
        # The session still works after the cancellation.
        assert not (await client.call_tool("list_vms", {"cluster": "beta"})).is_error

    def audited() -> list[dict[str, Any]]:
        return [r for r in tools_stack.records("vm_action", result="cancelled") if r["arguments"]["vmid"] == vm["vmid"]]

    wait_until(lambda: bool(audited()), timeout=10, what="the audit record of the cancelled call")
    record = audited()[-1]
    upid = record["upid"]
    assert upid.startswith("UPID:") and upid in record["message"] and "goes on in Proxmox" in record["message"]
    assert record["cluster"] == "beta" and record["decision"]["allowed"] is True
    # The gateway stopped following; the task itself goes on and ends in the simulator.
    assert _task(tools_stack, upid)["status"] == "running"
    wait_until(lambda: _task(tools_stack, upid)["status"] == "stopped", timeout=10, what="the task to end")
    assert _task(tools_stack, upid)["exitstatus"] == "OK" and tools_stack.guest_status("beta", vm["vmid"]) == "running"


def _task(stack: ToolsStack, upid: str) -> dict[str, Any]:
    with stack.sim("beta") as sim:
        return sim.get(f"/nodes/{upid.split(':')[1]}/tasks/{upid}/status")
