"""The catalog (profiles, schemas, annotations), clusters, waiting and cancelling, and destructive confirmation,
with the bus faked: what would have gone to NATS is recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.subjects import ApiOp
from proxmox_mcp_gateway.access import AccessPolicy
from proxmox_mcp_gateway.api_policy import destructive_api_call
from proxmox_mcp_gateway.audit import AuditLog
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, ToolExecutor
from proxmox_mcp_gateway.catalog import PROFILES, TOOLS, TOOLS_BY_NAME, exposed_tools
from proxmox_mcp_gateway.clusters import ClusterConfigError, ClusterNames
from proxmox_mcp_gateway.confirm import Answer, ConfirmationPending, ConfirmPolicy
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_runtime.redact import Redactor
from pydantic import ValidationError

from tests.support.procs import wait_until_async
from tests.unit.gateway.fakes import UPID, FakeBus
from tests.unit.gateway.test_executor import caller, records, refused


class Channel:
    kind = "elicitation"

    def __init__(self, answer: Answer | None = Answer.ACCEPT, error: Exception | None = None,
                 delay: float = 0.0) -> None:
        self.answer, self.error, self.delay = answer, error, delay
        self.asked: list[str] = []

    async def ask(self, message: str) -> Answer:
        self.asked.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if self.answer is None:
            raise ConfirmationPending(message)
        return self.answer


def make(tmp_path: Path, *, bus: FakeBus | None = None, exposed: frozenset[str] | None = None,
         clusters: tuple[str, ...] = (), confirm: ConfirmPolicy | None = None,
         poll: float = 0.01) -> tuple[ToolExecutor, FakeBus, Path]:
    bus = bus or FakeBus()
    audit = tmp_path / "audit.jsonl"
    sec = CallSecurity(access=AccessPolicy(exposed=exposed), audit=AuditLog(audit), redactor=Redactor(),
                       confirm=confirm or ConfirmPolicy(timeout=1.0))
    limits = CallLimits(default_cluster=clusters[0] if clusters else "default", clusters=clusters,
                        task_poll_interval=poll)
    return ToolExecutor(cast(Any, bus), limits, sec), bus, audit


# --- catalog -------------------------------------------------------------------------------------------------------


def test_every_tool_has_an_object_schema_with_cluster_and_destructive_tools_take_confirm() -> None:
    assert len(TOOLS) == len(TOOLS_BY_NAME) == 30
    for spec in TOOLS:
        schema = spec.input_schema()
        assert schema["type"] == "object" and "cluster" in schema["properties"], spec.name
        assert spec.output_schema()["type"] == "object"
        assert ("confirm" in schema["properties"]) == spec.annotations.destructive, spec.name
        if spec.annotations.read_only:
            assert spec.scope is Scope.READ and spec.annotations.idempotent and not spec.annotations.destructive
        json.dumps(schema)


def test_profiles_and_explicit_lists() -> None:
    assert exposed_tools("minimal") == {"execute_command", "list_vms", "vm_status", "vm_action", "node_status",
                                        "proxmox_api"}
    assert exposed_tools("minimal") < exposed_tools("standard") < exposed_tools("full") == set(TOOLS_BY_NAME)
    assert exposed_tools("full", ["list_vms", " wait_task "]) == {"list_vms", "wait_task"}
    with pytest.raises(ValueError, match="unknown tool profile 'huge'"):
        exposed_tools("huge")
    with pytest.raises(ValueError, match="unknown tool.*nope"):
        exposed_tools("full", ["list_vms", "nope"])
    assert set(PROFILES) == {"minimal", "standard", "full"}
    assert GatewaySettings(tool_profile="standard").exposed_tools() == exposed_tools("standard")
    with pytest.raises(ValidationError, match="unknown tool"):
        GatewaySettings(tools=["list_vms", "rm_rf"])
    with pytest.raises(ValidationError, match="profile"):
        GatewaySettings(tool_profile="everything")


async def test_a_tool_outside_the_profile_is_hidden_and_unknown_but_resources_may_use_it(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path, exposed=exposed_tools("minimal"))
    admin = caller(Scope.ADMIN)
    assert {s.name for s in executor.visible_tools(admin)} == exposed_tools("minimal")
    failure = await refused(executor, admin, "task_status", {"upid": UPID})
    assert failure.code is ErrorCode.INVALID_ARGUMENT and "unknown tool 'task_status'" in failure.info.message
    assert bus.sent == []
    result = await executor.call("task_status", {"upid": UPID}, admin, any_offered=True)
    assert result["status"] == "stopped"


def test_destructive_proxmox_api_calls() -> None:
    assert destructive_api_call("DELETE", "/nodes/pve1/qemu/100/snapshot/s1")
    assert destructive_api_call("POST", "/nodes/pve1/qemu/100/status/stop")
    assert destructive_api_call("POST", "/nodes/pve1/lxc/200/snapshot/s1/rollback")
    assert destructive_api_call("POST", "/nodes/pve1/status")
    assert not destructive_api_call("POST", "/nodes/pve1/qemu/100/status/start")
    assert not destructive_api_call("PUT", "/access/password")
    assert not destructive_api_call("GET", "/nodes/pve1/qemu/100/status/stop")


# --- clusters ------------------------------------------------------------------------------------------------------


def test_cluster_names() -> None:
    names = ClusterNames.of("alpha", ["alpha", "beta"])
    assert names.resolve(None) == "alpha" and names.resolve("beta") == "beta"
    with pytest.raises(ServiceFailure) as caught:
        names.resolve("gamma")
    failure = caught.value
    assert failure.code is ErrorCode.INVALID_ARGUMENT and "known clusters: alpha, beta" in failure.info.message
    assert ClusterNames.of("default").known == ("default",)
    with pytest.raises(ClusterConfigError, match="not among"):
        ClusterNames.of("gamma", ["alpha"])
    with pytest.raises(ClusterConfigError, match="invalid cluster name"):
        ClusterNames.of("default", ["Bad Name"])


def test_cluster_names_from_settings_and_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PMCP_DEFAULT_CLUSTER", "PMCP_CLUSTERS", "PMCP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "clusters.toml"
    config.write_text('default_cluster = "beta"\n[[clusters]]\nname = "alpha"\n[clusters.api]\n'
                      'token_value = "s3cret-never-kept"\n[[clusters]]\nname = "beta"\n')
    names = GatewaySettings(config=config).cluster_names()
    assert names == ClusterNames(default="beta", known=("alpha", "beta"))
    assert GatewaySettings().cluster_names() == ClusterNames(default="default", known=("default",))
    with pytest.raises(ClusterConfigError, match="does not exist"):
        GatewaySettings(config=tmp_path / "missing.toml").cluster_names()
    config.write_text("[[clusters]\nname=")
    with pytest.raises(ClusterConfigError, match="TOML") as caught:
        GatewaySettings(config=config).cluster_names()
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("PMCP_CLUSTERS", "x, y")  # wins over the config file
    assert GatewaySettings(config=config).cluster_names() == ClusterNames(default="x", known=("x", "y"))
    assert GatewaySettings(default_cluster="y").cluster_names().default == "y"


async def test_unknown_clusters_are_refused_before_the_bus_and_known_ones_travel_in_the_request(
    tmp_path: Path,
) -> None:
    executor, bus, audit = make(tmp_path, clusters=("alpha", "beta"))
    failure = await refused(executor, caller(Scope.READ), "list_vms", {"cluster": "gamma"})
    assert failure.code is ErrorCode.INVALID_ARGUMENT and "alpha, beta" in failure.info.message
    assert bus.sent == []
    await executor.call("list_containers", {"cluster": "beta", "node": "pve1"}, caller(Scope.READ))
    await executor.call("list_vms", {}, caller(Scope.READ))
    assert [(r.cluster, r.args) for r in bus.sent] == [("beta", {"node": "pve1", "type": "lxc"}), ("alpha", {})]
    assert records(audit)[-1]["cluster"] == "alpha"


async def test_gateway_only_arguments_never_reach_the_worker(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path)
    await executor.call("vm_action", {"vmid": 100, "action": "stop", "confirm": True, "cluster": "default"},
                        caller(Scope.OPERATE))
    assert bus.sent[0].args == {"vmid": 100, "action": "stop", "wait": False, "wait_timeout": 300}


# --- waiting and cancelling ----------------------------------------------------------------------------------------


async def test_a_started_task_is_followed_with_progress_when_asked(tmp_path: Path) -> None:
    executor, bus, _ = make(tmp_path, bus=FakeBus(task_polls_running=2))
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    result = await executor.call("create_snapshot", {"vmid": 100, "name": "s1", "wait": True},
                                 caller(Scope.OPERATE), progress)
    assert result["waited"] is True and result["task"]["exitstatus"] == "OK"
    assert [s.op for s in bus.sent] == [ApiOp.SNAPSHOT_CREATE, *[ApiOp.TASK_STATUS] * 3]
    assert [m for _, _, m in seen] == ["task running: line 1", "task running: line 2", "task stopped: TASK OK",
                                       "task finished: OK"]
    assert seen[-1][0] == seen[-1][1]
    unwaited = await executor.call("create_snapshot", {"vmid": 100, "name": "s2"}, caller(Scope.OPERATE))
    assert unwaited["waited"] is False and unwaited["task"] is None


async def test_a_wait_that_times_out_names_the_task(tmp_path: Path) -> None:
    executor, _, _ = make(tmp_path, bus=FakeBus(task_polls_running=10_000), poll=0.2)
    failure = await refused(executor, caller(Scope.READ), "wait_task", {"upid": UPID, "timeout": 1})
    assert failure.code is ErrorCode.TIMEOUT and UPID in failure.info.message and "goes on" in failure.info.message


async def test_cancelling_a_wait_is_audited_with_the_task_that_goes_on(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path, bus=FakeBus(task_polls_running=10_000))
    call = asyncio.create_task(executor.call("vm_action", {"vmid": 100, "action": "start", "wait": True},
                                             caller(Scope.OPERATE)))
    await wait_until_async(lambda: sum(1 for s in bus.sent if s.op is ApiOp.TASK_STATUS) >= 2, timeout=5,
                           what="the wait to poll the task twice")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    done = records(audit)[-1]
    assert done["event"] == "tool_call" and done["result"] == "cancelled" and done["upid"] == UPID
    assert "goes on in Proxmox" in done["message"]


# --- confirmation --------------------------------------------------------------------------------------------------


async def test_without_a_channel_only_confirm_true_confirms(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    failure = await refused(executor, caller(Scope.ADMIN), "rollback_snapshot", {"vmid": 100, "name": "s1"})
    assert failure.code is ErrorCode.POLICY_DENIED and failure.info.details["reason"] == "confirmation_required"
    assert bus.sent == []
    assert records(audit)[-1]["decision"]["confirmation"] == "missing"
    await executor.call("rollback_snapshot", {"vmid": 100, "name": "s1", "confirm": True}, caller(Scope.ADMIN))
    assert records(audit)[-1]["decision"]["confirmation"] == "argument" and len(bus.sent) == 1
    await executor.call("vm_action", {"vmid": 100, "action": "start"}, caller(Scope.OPERATE))  # not destructive
    assert "confirmation" not in records(audit)[-1]["decision"]


@pytest.mark.parametrize("answer,reason", [(Answer.DECLINE, "declined"), (Answer.CANCEL, "cancelled")])
async def test_a_user_who_says_no_is_not_overruled_by_confirm_true(tmp_path: Path, answer: Answer,
                                                                   reason: str) -> None:
    executor, bus, audit = make(tmp_path)
    channel = Channel(answer)
    failure = await refused_with(executor, "delete_snapshot", {"vmid": 100, "name": "s1", "confirm": True}, channel)
    assert failure.code is ErrorCode.POLICY_DENIED and reason in failure.info.message and bus.sent == []
    assert records(audit)[-1]["decision"]["confirmation"] == reason
    assert "delete_snapshot" in channel.asked[0] and '"name": "s1"' in channel.asked[0]


async def test_an_accepted_elicitation_runs_the_call(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    result = await executor.call("execute_command", {"command": "qm stop 100"}, caller(Scope.EXEC, "operator"),
                                 confirmation=Channel())
    assert result["exit_code"] == 0 and len(bus.sent) == 1
    assert [r["decision"]["confirmation"] for r in records(audit)] == ["elicitation", "elicitation"]


async def test_a_channel_that_fails_falls_back_to_the_argument_and_a_slow_user_times_out(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path, confirm=ConfirmPolicy(timeout=0.2))
    broken = Channel(error=RuntimeError("client said: not supported"))
    await executor.call("vm_action", {"vmid": 100, "action": "reset", "confirm": True}, caller(Scope.OPERATE),
                        confirmation=broken)
    assert records(audit)[-1]["decision"]["confirmation"] == "argument_after_failure"
    failure = await refused_with(executor, "vm_action", {"vmid": 100, "action": "reset"}, broken)
    assert failure.info.details["reason"] == "confirmation_required"
    failure = await refused_with(executor, "vm_action", {"vmid": 100, "action": "reset"}, Channel(delay=5))
    assert failure.info.details["reason"] == "confirmation_timeout" and len(bus.sent) == 1


async def test_a_pending_confirmation_is_audited_and_sends_nothing(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path)
    with pytest.raises(ConfirmationPending) as caught:
        await executor.call("vm_action", {"vmid": 100, "action": "stop"}, caller(Scope.OPERATE),
                            confirmation=Channel(answer=None))
    assert "vm_action" in caught.value.message and bus.sent == []
    assert records(audit)[-1]["event"] == "confirmation_requested"


async def test_confirmation_can_be_switched_off(tmp_path: Path) -> None:
    executor, bus, audit = make(tmp_path, confirm=ConfirmPolicy(enabled=False))
    await executor.call("vm_action", {"vmid": 100, "action": "stop"}, caller(Scope.OPERATE))
    assert len(bus.sent) == 1 and records(audit)[-1]["decision"]["confirmation"] == "disabled"


async def refused_with(executor: ToolExecutor, tool: str, args: dict[str, Any], channel: Channel) -> ServiceFailure:
    with pytest.raises(ServiceFailure) as caught:
        await executor.call(tool, args, caller(Scope.ADMIN, "operator"), confirmation=channel)
    return caught.value
