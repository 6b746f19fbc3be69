"""The catalog: every tool's schemas and annotations, and the exposure profiles that decide what is offered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_gateway.catalog import PROFILES, TOOLS, TOOLS_BY_NAME, exposed_tools
from proxmox_mcp_gateway.settings import GatewaySettings
from pydantic import ValidationError

from tests.unit.gateway.executors import make
from tests.unit.gateway.fakes import UPID
from tests.unit.gateway.test_calls import caller, refused


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


def test_tool_profiles_and_explicit_tool_lists_decide_what_is_exposed() -> None:
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
