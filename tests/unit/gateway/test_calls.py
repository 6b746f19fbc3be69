"""ToolExecutor.call, the one path of every tool call: access, limits, policy, redaction and audit, in order."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from proxmox_mcp_contracts.envelope import Caller, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_gateway.access import AccessPolicy, CallDecision
from proxmox_mcp_gateway.audit import AuditLog
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, ToolExecutor
from proxmox_mcp_gateway.catalog import TOOLS, ToolSpec
from proxmox_mcp_gateway.limits import CallLimiter, RateSpec
from proxmox_mcp_gateway.principal import Principal
from proxmox_mcp_runtime.redact import Redactor
from pydantic import BaseModel

from tests.support.clock import ManualClock
from tests.support.procs import wait_until_async
from tests.unit.gateway.fakes import UPID, FakeBus


def caller(scope: Scope, profile: str = "readonly", tools: set[str] | None = None) -> Principal:
    return Principal(token_id=f"tok-{scope.value}", scope=scope, command_profile=profile, address="10.1.2.3",
                     allowed_tools=frozenset(tools) if tools is not None else None)


def make(tmp_path: Path, *, bus: FakeBus | None = None, read_only: bool = False, limiter: CallLimiter | None = None,
         audit_path: Path | None = None, **security: Any) -> tuple[ToolExecutor, FakeBus, Path]:
    bus = bus or FakeBus()
    path = audit_path or tmp_path / "audit.jsonl"
    sec = CallSecurity(access=AccessPolicy(read_only=read_only), limiter=limiter, audit=AuditLog(path),
                       redactor=Redactor(), **security)
    return ToolExecutor(cast(Any, bus), CallLimits(), sec), bus, path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def refused(executor: ToolExecutor, who: Caller, tool: str, args: dict[str, Any]) -> ServiceFailure:
    with pytest.raises(ServiceFailure) as caught:
        await executor.call(tool, args, who, transport="test")
    return caught.value


async def test_a_tool_above_the_token_scope_is_hidden_and_refused_before_any_request(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    reader = caller(Scope.READ)
    assert "execute_command" not in [s.name for s in executor.visible_tools(reader)]
    assert "vm_action" not in [s.name for s in executor.visible_tools(reader)]
    failure = await refused(executor, reader, "execute_command", {"command": "uptime"})
    assert failure.code is ErrorCode.PERMISSION_DENIED and "needs scope exec" in failure.info.message
    assert bus.sent == []
    [entry] = records(audit)
    assert entry["result"] == "permission_denied" and entry["decision"]["allowed"] is False
    assert entry["token_id"] == "tok-read" and entry["client"] == "10.1.2.3" and entry["transport"] == "test"


async def test_a_tool_outside_the_token_allowlist_is_hidden_and_refused(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path)
    who = caller(Scope.ADMIN, tools={"list_vms"})
    assert [s.name for s in executor.visible_tools(who)] == ["list_vms"]
    failure = await refused(executor, who, "node_status", {})
    assert failure.code is ErrorCode.PERMISSION_DENIED and "allowlist" in failure.info.message
    assert (await executor.call("list_vms", {}, who))["count"] == 0
    assert len(bus.sent) == 1


async def test_unknown_tools_are_invalid_arguments(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path)
    failure = await refused(executor, caller(Scope.ADMIN), "rm_everything", {})
    assert failure.code is ErrorCode.INVALID_ARGUMENT and bus.sent == []


async def test_read_only_mode_offers_only_read_tools_and_lowers_the_scope_sent_to_workers(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path, read_only=True)
    admin = caller(Scope.ADMIN)
    visible = {s.name for s in executor.visible_tools(admin)}
    assert visible == {s.name for s in TOOLS if s.scope is Scope.READ}
    assert visible >= {"list_vms", "vm_status", "node_status", "proxmox_api"} and "vm_action" not in visible
    failure = await refused(executor, admin, "vm_action", {"vmid": 100, "action": "stop"})
    assert "read-only mode" in failure.info.message
    start = {"method": "POST", "path": "/nodes/pve1/qemu/100/status/start"}
    failure = await refused(executor, admin, "proxmox_api", start)
    assert failure.code is ErrorCode.PERMISSION_DENIED
    await executor.call("proxmox_api", {"path": "/nodes"}, admin)
    assert [r.caller.scope for r in bus.sent] == [Scope.READ]


@pytest.mark.parametrize("command", ["rm -rf /", "cat /etc/pve/priv/authkey.key", "uptime; reboot",
                                     "echo $(id)", "qm stop 100"])
async def test_commands_the_profile_refuses_never_reach_a_worker(tmp_path: Path, command: str) -> None:
    executor, bus, audit = make(tmp_path)
    failure = await refused(executor, caller(Scope.EXEC), "execute_command", {"command": command})
    assert failure.code is ErrorCode.POLICY_DENIED and failure.info.message.startswith("command refused by policy")
    assert bus.sent == []
    assert records(audit)[-1]["result"] == "policy_denied"


async def test_operator_profile_allows_lifecycle_commands_and_the_confirmation_hook_sees_destructive_ones(
    tmp_path: Path,
) -> None:
    seen: list[CallDecision] = []

    async def confirm(spec: ToolSpec, args: BaseModel, who: Caller, decision: CallDecision) -> None:
        seen.append(decision)

    executor, bus, audit = make(tmp_path, confirm=confirm)
    result = await executor.call("execute_command", {"command": "qm stop 100"}, caller(Scope.EXEC, "operator"))
    assert result["exit_code"] == 0 and len(bus.sent) == 1
    assert seen and seen[0].destructive and seen[0].argv == ["qm", "stop", "100"]
    events = [r["event"] for r in records(audit)]
    assert events == ["tool_call_started", "tool_call"]


async def test_the_confirmation_hook_can_refuse_before_dispatch(tmp_path: Path) -> None:
    async def deny(spec: ToolSpec, args: BaseModel, who: Caller, decision: CallDecision) -> None:
        raise ServiceFailure(ErrorCode.PERMISSION_DENIED, "confirmation required")

    executor, bus, audit = make(tmp_path, confirm=deny)
    failure = await refused(executor, caller(Scope.OPERATE), "vm_action", {"vmid": 100, "action": "stop"})
    assert "confirmation" in failure.info.message and bus.sent == []
    decision = records(audit)[-1]["decision"]
    assert decision["allowed"] is False and decision["destructive"] is True and "confirmation" in decision["reason"]
    await executor.call("vm_action", {"vmid": 100, "action": "start"}, caller(Scope.OPERATE))
    assert len(bus.sent) == 1


@pytest.mark.parametrize("args,code,words", [
    ({"method": "GET", "path": "/access/users"}, ErrorCode.PERMISSION_DENIED, "admin-only"),
    ({"method": "GET", "path": "/access/ticket"}, ErrorCode.PERMISSION_DENIED, "admin-only"),
    ({"method": "GET", "path": "/nodes/pve1%2Fexecute"}, ErrorCode.PERMISSION_DENIED, "admin-only"),
    ({"method": "POST", "path": "/nodes/pve1/qemu/100/status/start"}, ErrorCode.PERMISSION_DENIED, "admin"),
    ({"method": "GET", "path": "/nodes/pve1/qemu/100/status/current", "data": {"bogus": 1}},
     ErrorCode.INVALID_ARGUMENT, "bogus"),
    ({"method": "GET", "path": "/nodes/pve1/rrddata", "data": {"timeframe": "century"}},
     ErrorCode.INVALID_ARGUMENT, "timeframe"),
    ({"method": "GET", "path": "/no/such/endpoint"}, ErrorCode.NOT_FOUND, "not an endpoint"),
    ({"method": "GET", "path": "/nodes/pve1/qemu/10%250/config"}, ErrorCode.INVALID_ARGUMENT, "not allowed"),
])
async def test_proxmox_api_refusals_happen_before_any_request(
    tmp_path: Path, args: dict[str, Any], code: ErrorCode, words: str,
) -> None:
    executor, bus, _ = make(tmp_path)
    failure = await refused(executor, caller(Scope.EXEC), "proxmox_api", args)
    assert failure.code is code and words in failure.info.message, failure.info.message
    assert bus.sent == []


async def test_proxmox_api_sends_the_canonical_path_it_checked(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path)
    await executor.call("proxmox_api", {"path": "//nodes/pve1/qemu/100/status/current/"}, caller(Scope.READ))
    assert bus.sent[0].args["path"] == "/nodes/pve1/qemu/100/status/current"
    await executor.call("proxmox_api", {"method": "POST", "path": "/nodes/pve1/qemu/100/status/start",
                                        "data": {"timeout": 30}}, caller(Scope.ADMIN))
    assert bus.sent[1].args["data"] == {"timeout": 30}


async def test_a_burst_past_the_token_rate_is_refused_with_retry_after_and_recovers(tmp_path: Path) -> None:
    clock = ManualClock()
    limiter = CallLimiter(per_token=RateSpec.parse("2/1s"), clock=clock)
    executor, bus, audit = make(tmp_path, limiter=limiter)
    who = caller(Scope.READ)
    await executor.call("list_vms", {}, who)
    await executor.call("node_status", {}, who)
    failure = await refused(executor, who, "list_vms", {})
    assert failure.code is ErrorCode.RATE_LIMITED and failure.info.retryable
    assert failure.info.details["retry_after"] == pytest.approx(0.5)
    assert len(bus.sent) == 2 and records(audit)[-1]["result"] == "rate_limited"
    clock.now += 0.5
    await executor.call("list_vms", {}, who)
    other = caller(Scope.OPERATE)  # another token has its own bucket
    await executor.call("list_vms", {}, other)


async def test_the_per_tool_rate_limits_one_tool_only(tmp_path: Path) -> None:
    clock = ManualClock()
    limiter = CallLimiter(per_token=None, per_tool={"vm_status": RateSpec.parse("1/10s")}, clock=clock)
    executor, _, _ = make(tmp_path, limiter=limiter)
    who = caller(Scope.READ)
    await executor.call("vm_status", {"vmid": 100}, who)
    failure = await refused(executor, who, "vm_status", {"vmid": 100})
    assert failure.info.details["retry_after"] == pytest.approx(10)
    await executor.call("list_vms", {}, who)


async def test_calls_past_the_concurrency_cap_are_refused_until_one_finishes(tmp_path: Path) -> None:
    gate = asyncio.Event()
    executor, bus, _ = make(tmp_path, bus=FakeBus(gate=gate), limiter=CallLimiter(per_token=None, max_concurrent=2))
    who = caller(Scope.READ)
    running = [asyncio.create_task(executor.call("list_vms", {}, who)) for _ in range(2)]
    await wait_until_async(lambda: len(bus.sent) >= 2, timeout=5, what="both calls to reach the bus")
    failure = await refused(executor, who, "list_vms", {})
    assert failure.code is ErrorCode.RATE_LIMITED and "calls running" in failure.info.message
    gate.set()
    await asyncio.gather(*running)
    await executor.call("list_vms", {}, who)


async def test_results_and_audit_records_are_redacted(tmp_path: Path) -> None:
    key_path = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
    key = key_path.read_text()
    pve_secret = str(uuid.uuid4())
    bus = FakeBus(stdout=f"notes\n{key}PVEAPIToken=root@pam!ci={pve_secret}\n")
    executor, _, audit = make(tmp_path, bus=bus)
    result = await executor.call("execute_command", {"command": "cat /home/pmcptest/notes.txt"},
                                 caller(Scope.EXEC))
    body = key.splitlines()[2]
    assert body not in result["stdout"] and pve_secret not in result["stdout"] and "notes" in result["stdout"]
    await executor.call("proxmox_api", {"path": "/nodes", "data": {}}, caller(Scope.READ))
    text = audit.read_text()
    assert body not in text and pve_secret not in text


async def test_arguments_in_the_audit_record_are_redacted(tmp_path: Path) -> None:
    executor, _, audit = make(tmp_path)
    change = {"method": "PUT", "path": "/access/password", "data": {"userid": "a@pve", "password": "hunter2hunter2"}}
    await executor.call("proxmox_api", change, caller(Scope.ADMIN))
    await refused(executor, caller(Scope.READ), "proxmox_api", change)
    assert "hunter2hunter2" not in audit.read_text()
    assert records(audit)[-1]["arguments"]["data"]["password"] == "[REDACTED]"


async def test_worker_errors_reach_the_client_sanitized(tmp_path: Path) -> None:
    class Failing(FakeBus):
        async def call(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, 'bad ticket PVE:root@pam:4EEC61E2::abcdEFGH+/== at '
                                 '/usr/lib/python3/dist-packages/x.py\nTraceback (most recent call last):\n  File "x"')

    executor, _, audit = make(tmp_path, bus=Failing())
    failure = await refused(executor, caller(Scope.READ), "list_vms", {})
    assert failure.code is ErrorCode.UPSTREAM_ERROR
    assert "abcdEFGH" not in failure.info.message and "Traceback" not in failure.info.message
    assert "/usr/lib" not in failure.info.message
    assert "abcdEFGH" not in audit.read_text()


async def test_an_audit_log_that_cannot_be_written_fails_calls_closed(tmp_path: Path) -> None:
    broken = tmp_path / "audit-is-a-directory"
    broken.mkdir()
    executor, bus, _ = make(tmp_path, audit_path=broken)
    failure = await refused(executor, caller(Scope.EXEC), "execute_command", {"command": "uptime"})
    assert failure.code is ErrorCode.INTERNAL and "not performed" in failure.info.message
    assert bus.sent == []  # the "started" record comes first: nothing changing runs unaudited
    failure = await refused(executor, caller(Scope.READ), "list_vms", {})
    assert failure.code is ErrorCode.INTERNAL and "withheld" in failure.info.message
    audit = executor.security.audit
    assert audit is not None and audit.failures >= 2 and not audit.healthy


async def test_audit_records_carry_request_id_duration_and_upid(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    await executor.call("vm_action", {"vmid": 100, "action": "start"}, caller(Scope.OPERATE), transport="rest")
    started, done = records(audit)
    assert started["event"] == "tool_call_started" and done["event"] == "tool_call"
    assert done["request_id"] == started["request_id"] == bus.sent[0].request_id
    assert done["upid"] == UPID and done["result"] == "ok" and done["duration_ms"] >= 0
    assert done["transport"] == "rest" and done["arguments"] == {"vmid": 100, "action": "start"}
    assert done["ts"].endswith("Z")


async def test_the_observer_sees_every_call_with_its_code_and_which_limit_refused_it(tmp_path: Path) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    clock = ManualClock()
    limiter = CallLimiter(per_token=None, per_tool={"list_vms": RateSpec.parse("1/m")}, clock=clock)
    executor, _, _ = make(tmp_path, limiter=limiter,
                          observer=lambda tool, code, seconds, details: seen.append((tool, code, details)))
    who = caller(Scope.READ)
    await executor.call("list_vms", {}, who)
    await refused(executor, who, "list_vms", {})
    await refused(executor, who, "execute_command", {"command": "uptime"})
    assert [(t, c) for t, c, _ in seen] == [("list_vms", "ok"), ("list_vms", "rate_limited"),
                                            ("execute_command", "permission_denied")]
    assert seen[1][2]["limit"] == "tool"


async def test_configured_command_profiles_are_used_and_bad_files_refused(tmp_path: Path) -> None:
    from proxmox_mcp_gateway.security import SecurityConfigError, load_command_profiles
    from proxmox_mcp_gateway.settings import GatewaySettings

    good = tmp_path / "profiles.toml"
    good.write_text('[profiles.uptime-only]\n[[profiles.uptime-only.rules]]\nprogram = "uptime"\n')
    profiles = load_command_profiles(GatewaySettings(command_profiles=good))
    bus = FakeBus()
    sec = CallSecurity(access=AccessPolicy(extra_profiles=profiles), audit=AuditLog(tmp_path / "a.jsonl"))
    executor = ToolExecutor(cast(Any, bus), CallLimits(), sec)
    who = caller(Scope.EXEC, "uptime-only")
    await executor.call("execute_command", {"command": "uptime"}, who)
    failure = await refused(executor, who, "execute_command", {"command": "df -h"})
    assert failure.code is ErrorCode.POLICY_DENIED and len(bus.sent) == 1
    unknown = await refused(executor, caller(Scope.EXEC, "nosuchprofile"), "execute_command", {"command": "uptime"})
    assert unknown.code is ErrorCode.POLICY_DENIED
    bad = tmp_path / "bad.json"
    bad.write_text('{"profiles": {"x": {"rules": "nope"}}}')
    with pytest.raises(SecurityConfigError, match="^PMCP_COMMAND_PROFILES: .*bad.json"):
        load_command_profiles(GatewaySettings(command_profiles=bad))
    with pytest.raises(SecurityConfigError, match="does not exist"):
        load_command_profiles(GatewaySettings(command_profiles=tmp_path / "missing.toml"))
