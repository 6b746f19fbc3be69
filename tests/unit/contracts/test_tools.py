"""The tool argument and result models: bad arguments refused, and the schemas an MCP client reads, written out by
hand where it matters (a model cannot vouch for itself: its own schema accepts whatever it emits)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from proxmox_mcp_contracts import tools as t
from pydantic import BaseModel, ValidationError

ARG_MODELS: list[type[BaseModel]] = [t.ExecuteCommandArgs, t.ListVmsArgs, t.VmStatusArgs, t.VmActionArgs,
                                     t.NodeStatusArgs, t.ProxmoxApiArgs, t.TaskStatusArgs]


@pytest.mark.parametrize("model", ARG_MODELS, ids=lambda m: m.__name__)
def test_argument_schemas_are_objects_that_refuse_unknown_fields(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)
    with pytest.raises(ValidationError):
        model.model_validate({"surely_unknown": 1})


@pytest.mark.parametrize("args", [
    {"command": "ls", "node": "pve1", "host": "pve2"},
    {"command": "ls\x00rm"},
    {"command": ""},
    {"command": "ls", "timeout": 0},
])
def test_execute_command_arguments_refuse_bad_input(args: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        t.ExecuteCommandArgs.model_validate(args)


def test_execute_command_host_is_an_alias_of_node() -> None:
    assert t.ExecuteCommandArgs.model_validate({"command": "ls", "host": "pve2"}).node == "pve2"


@pytest.mark.parametrize("path", ["/nodes/../access", "nodes", "/api2/json/nodes", "/nodes/x y", "/a/./b"])
def test_proxmox_api_paths_cannot_escape_or_be_malformed(path: str) -> None:
    with pytest.raises(ValidationError):
        t.ProxmoxApiArgs.model_validate({"path": path})


def test_vmids_outside_proxmox_range_are_refused() -> None:
    for vmid in (99, 1_000_000_000, -1):
        with pytest.raises(ValidationError):
            t.VmStatusArgs.model_validate({"vmid": vmid})


def test_execute_command_input_schema_states_the_limits_a_client_sees() -> None:
    schema = t.ExecuteCommandArgs.model_json_schema()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["command"]
    assert set(schema["properties"]) == {"command", "timeout", "node", "host"}
    command = schema["properties"]["command"]
    assert (command["type"], command["minLength"], command["maxLength"]) == ("string", 1, 8192)
    timeout = schema["properties"]["timeout"]
    assert (timeout["type"], timeout["default"], timeout["minimum"], timeout["maximum"]) == ("integer", 30, 1, 3600)
    node_text, null = schema["properties"]["node"]["anyOf"]
    assert null == {"type": "null"}
    assert node_text["type"] == "string" and node_text["maxLength"] == 63
    assert node_text["pattern"] == r"^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?$"
    assert schema["properties"]["host"]["anyOf"] == schema["properties"]["node"]["anyOf"]


def test_vm_ids_and_api_methods_are_bounded_in_the_input_schemas() -> None:
    vmid = t.VmStatusArgs.model_json_schema()["properties"]["vmid"]
    assert (vmid["type"], vmid["minimum"], vmid["maximum"]) == ("integer", 100, 999_999_999)
    api = t.ProxmoxApiArgs.model_json_schema()
    assert api["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "DELETE"]
    assert api["properties"]["method"]["default"] == "GET"
    assert api["required"] == ["path"]
    action = t.VmActionArgs.model_json_schema()["properties"]["action"]
    assert action["enum"] == ["start", "stop", "restart", "shutdown", "suspend", "resume", "reset", "reboot"]


def _list_vms_sample() -> dict[str, Any]:
    """A list_vms result as the api-worker sends it (absent numbers are null)."""
    return {
        "vms": [
            {"vmid": 100, "name": "web-1", "node": "pve1", "type": "qemu", "status": "running", "template": False,
             "cpu": 0.02, "maxcpu": 2, "mem": 536870912, "maxmem": 2147483648, "disk": 0, "maxdisk": 34359738368,
             "uptime": 3600, "tags": None},
            {"vmid": 200, "name": None, "node": "pve2", "type": "lxc", "status": "stopped", "template": False,
             "cpu": None, "maxcpu": None, "mem": None, "maxmem": None, "disk": None, "maxdisk": None,
             "uptime": None, "tags": "db;prod"},
        ],
        "count": 2,
    }


def test_a_recorded_list_vms_result_matches_the_output_schema() -> None:
    schema = t.ListVmsResult.model_json_schema()
    assert schema["required"] == ["vms", "count"]
    assert schema["$defs"]["VmSummary"]["required"] == ["vmid", "node", "type", "status"]
    jsonschema.validate(_list_vms_sample(), schema)


@pytest.mark.parametrize("break_it", [
    lambda s: s.pop("count"),
    lambda s: s["vms"][0].update(type="kvm"),
    lambda s: s["vms"][0].update(vmid="100"),
    lambda s: s["vms"][1].pop("status"),
    lambda s: s["vms"][1].update(mem=1.5),
], ids=["no count", "unknown guest type", "vmid as text", "no status", "fractional memory"])
def test_a_list_vms_result_that_breaks_the_contract_fails_the_output_schema(break_it: Any) -> None:
    sample = _list_vms_sample()
    break_it(sample)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sample, t.ListVmsResult.model_json_schema())
