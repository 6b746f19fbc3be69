"""Destructive calls need confirmation: asked through the protocol when the client can (legacy elicitation, 2026
input_required), else an explicit confirm=true; refusals are tool errors, and both decisions are audited."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.tools.helpers import FAST, Elicitor, ToolsStack, call_error, call_ok
from tests.support.mcp_client import http_client
from tests.support.services import GatewayProc, start_gateway, wait_ready, write_private


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_without_elicitation_is_refused_unless_it_passes_confirm(tools_stack: ToolsStack,
                                                                                mode: str) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode=mode) as client:
        code, text = await call_error(client, "vm_action", {"vmid": vm["vmid"], "action": "reset"})
        assert code == "policy_denied" and "confirm=true" in text
        assert tools_stack.guest_status("alpha", vm["vmid"]) == "running"
        done = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "reset", "confirm": True,
                                                   "wait": True})
        assert done["task"]["ok"] is True
    refused, confirmed = [r for r in tools_stack.records("vm_action", event="tool_call")
                          if r["arguments"].get("action") == "reset"][-2:]
    assert refused["result"] == "policy_denied" and refused["decision"]["allowed"] is False
    assert refused["decision"]["confirmation"] == "missing" and refused["decision"]["destructive"] is True
    assert confirmed["result"] == "ok" and confirmed["decision"]["confirmation"] == "argument"


async def test_legacy_elicitation_asks_the_user_and_both_answers_are_audited(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    no = Elicitor("decline")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode="legacy",
                           elicitation_callback=no) as client:
        # confirm=true from the model does not replace the user's answer when the client can ask.
        code, text = await call_error(client, "vm_action", {"vmid": vm["vmid"], "action": "stop", "confirm": True})
        assert code == "policy_denied" and "declined" in text
    assert len(no.asked) == 1 and "vm_action" in no.asked[0] and str(vm["vmid"]) in no.asked[0]
    assert tools_stack.guest_status("alpha", vm["vmid"]) == "running"
    yes = Elicitor("accept")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode="legacy",
                           elicitation_callback=yes) as client:
        done = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "stop", "wait": True})
        assert done["task"]["ok"] is True and tools_stack.guest_status("alpha", vm["vmid"]) == "stopped"
        await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True})
    assert len(yes.asked) == 1  # the start was not asked about
    stops = [r for r in tools_stack.records("vm_action", event="tool_call")
             if r["arguments"].get("action") == "stop" and r["arguments"].get("vmid") == vm["vmid"]][-2:]
    assert [(r["result"], r["decision"]["confirmation"]) for r in stops] == [("policy_denied", "declined"),
                                                                              ("ok", "elicitation")]
    assert stops[0]["decision"]["allowed"] is False and "declined" in stops[0]["decision"]["reason"]


async def test_2026_era_confirmation_travels_as_input_required(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    no = Elicitor("accept", confirm=False)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode="auto",
                           elicitation_callback=no) as client:
        code, text = await call_error(client, "vm_action", {"vmid": vm["vmid"], "action": "shutdown"})
        assert code == "policy_denied" and "declined" in text
    assert len(no.asked) == 1 and tools_stack.guest_status("alpha", vm["vmid"]) == "running"
    yes = Elicitor("accept")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode="auto",
                           elicitation_callback=yes) as client:
        done = await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "shutdown", "wait": True})
        assert done["task"]["ok"] is True and tools_stack.guest_status("alpha", vm["vmid"]) == "stopped"
        await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True})
    assert len(yes.asked) == 1
    shutdowns = [(r["event"], r.get("result"), r["decision"].get("confirmation")) for r in tools_stack.audit()
                 if r.get("tool") == "vm_action" and r["arguments"].get("action") == "shutdown"
                 and r["arguments"].get("vmid") == vm["vmid"]][-5:]
    assert shutdowns == [
        ("confirmation_requested", None, None),
        ("tool_call", "policy_denied", "declined"),
        ("confirmation_requested", None, None),
        ("tool_call_started", None, "input_required"),
        ("tool_call", "ok", "input_required"),
    ]


async def test_2026_era_answers_count_only_with_the_state_minted_for_that_very_call(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    stop = {"vmid": vm["vmid"], "action": "stop"}
    forged: types.InputResponses = {"confirm": types.ElicitResult(action="accept", content={"confirm": True})}
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token, mode="auto",
                           elicitation_callback=Elicitor()) as client:
        session = client.session
        unasked = await session.call_tool("vm_action", stop, input_responses=forged, allow_input_required=True)
        assert isinstance(unasked, types.InputRequiredResult) and unasked.request_state
        assert unasked.request_state != "pmcp-confirm-v1"  # sealed, not our plaintext
        with pytest.raises(MCPError, match="requestState"):  # the state of the stop does not confirm a reset
            await session.call_tool("vm_action", {**stop, "action": "reset"}, input_responses=forged,
                                    request_state=unasked.request_state, allow_input_required=True)
    assert tools_stack.guest_status("alpha", vm["vmid"]) == "running"


async def test_rest_calls_need_confirm_true(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    refused = tools_stack.rest(tools_stack.gateway.token, "vm_action", {"vmid": vm["vmid"], "action": "reboot"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "policy_denied"
    assert refused.json()["error"]["details"]["reason"] == "confirmation_required"
    done = tools_stack.rest(tools_stack.gateway.token, "vm_action", {"vmid": vm["vmid"], "action": "reboot",
                                                                     "confirm": True, "wait": True})
    assert done.status_code == 200 and done.json()["structuredContent"]["task"]["ok"] is True


async def test_commands_that_do_what_destructive_tools_do_need_the_same_confirmation(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    operator = tools_stack.token(Scope.EXEC, profile="operator")
    async with http_client(tools_stack.gateway.url, operator) as client:
        stop = {"command": f"qm stop {vm['vmid']}", "node": vm["node"]}
        code, text = await call_error(client, "execute_command", stop)
        assert code == "policy_denied" and "confirm=true" in text
        assert tools_stack.guest_status("alpha", vm["vmid"]) == "running"
        harmless = await call_ok(client, "execute_command", {"command": "qm list"})
        assert harmless["exit_code"] == 0
        done = await call_ok(client, "execute_command", {**stop, "confirm": True})
        assert done["exit_code"] == 0, done
        assert tools_stack.guest_status("alpha", vm["vmid"]) == "stopped"
        await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True})
    records = [r for r in tools_stack.records("execute_command", event="tool_call")
               if r["arguments"]["command"] == f"qm stop {vm['vmid']}"][-2:]
    assert [(r["result"], r["decision"]["confirmation"]) for r in records] == [("policy_denied", "missing"),
                                                                                ("ok", "argument")]
    assert records[1]["decision"]["argv"] == ["qm", "stop", str(vm["vmid"])]


@pytest.fixture(scope="module")
def replicas(tools_stack: ToolsStack) -> Iterator[tuple[GatewayProc, GatewayProc, GatewayProc]]:
    """Two gateway replicas sharing PMCP_REQUEST_STATE_KEY_FILE, and a third with a key of its own."""
    workdir = tools_stack.workdir / "replicas"
    workdir.mkdir()
    shared = write_private(workdir / "state.key", secrets.token_hex(32))
    other = write_private(workdir / "other.key", secrets.token_hex(32))
    token = "replica-" + secrets.token_hex(16)
    started: list[GatewayProc] = []
    try:
        for key in (shared, shared, other):
            gateway = start_gateway(tools_stack.nats_url, workdir, token=token, env={
                **FAST, "PMCP_CONFIG": str(tools_stack.config_path), "PMCP_REQUEST_STATE_KEY_FILE": str(key)})
            started.append(gateway)  # one by one: a failed start still stops the ones before it
        for gateway in started:
            wait_ready(gateway)
        yield started[0], started[1], started[2]
    finally:
        for gateway in started:
            gateway.proc.stop()


async def test_a_confirmation_asked_by_one_replica_is_answered_through_another(
    tools_stack: ToolsStack, replicas: tuple[GatewayProc, GatewayProc, GatewayProc]
) -> None:
    first, second, foreign = replicas
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    stop = {"vmid": vm["vmid"], "action": "stop", "wait": True}
    answer: types.InputResponses = {"confirm": types.ElicitResult(action="accept", content={"confirm": True})}
    async with http_client(first.url, first.token, mode="auto", elicitation_callback=Elicitor()) as client:
        asked = await client.session.call_tool("vm_action", stop, allow_input_required=True)
    assert isinstance(asked, types.InputRequiredResult) and asked.request_state
    async with http_client(foreign.url, foreign.token, mode="auto", elicitation_callback=Elicitor()) as client:
        with pytest.raises(MCPError, match="requestState"):  # a replica with another key cannot open the state
            await client.session.call_tool("vm_action", stop, input_responses=answer,
                                           request_state=asked.request_state, allow_input_required=True)
    assert tools_stack.guest_status("alpha", vm["vmid"]) == "running"
    async with http_client(second.url, second.token, mode="auto", elicitation_callback=Elicitor()) as client:
        done = await client.session.call_tool("vm_action", stop, input_responses=answer,
                                              request_state=asked.request_state, allow_input_required=True)
        assert isinstance(done, types.CallToolResult) and not done.is_error, done
        assert done.structured_content is not None and done.structured_content["task"]["ok"] is True
        assert tools_stack.guest_status("alpha", vm["vmid"]) == "stopped"
        await call_ok(client, "vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True})
