"""The committed schema subset and the Proxmox-dialect validators built on it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from proxmox_mcp_contracts.pve_schema import (
    UnknownEndpoint,
    check_parameters,
    coerce_parameters,
    load_subset,
    match_path,
    method_schema,
    parse_property_string,
    return_errors,
    validate_parameters,
)

from tests.support.procs import REPO_ROOT, SHARED_DIR

REQUIRED_PATHS = [
    "/version",
    "/access/ticket",
    "/access/users",
    "/access/acl",
    "/cluster/resources",
    "/cluster/status",
    "/cluster/tasks",
    "/nodes",
    "/nodes/{node}/status",
    "/nodes/{node}/network",
    "/nodes/{node}/storage",
    "/nodes/{node}/storage/{storage}/content",
    "/nodes/{node}/qemu/{vmid}/agent/exec",
    "/nodes/{node}/qemu/{vmid}/agent/exec-status",
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    "/nodes/{node}/execute",
    "/nodes/{node}/tasks/{upid}/log",
]


def test_the_committed_subset_matches_the_full_schema() -> None:
    source = SHARED_DIR / "pve-api" / "pve-api-schema.json"
    if not source.is_file():
        pytest.fail(f"the full schema is expected at {source}")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_pve_schema_subset.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_check_mode_notices_a_stale_subset(tmp_path: Any) -> None:
    stale = tmp_path / "subset.json"
    stale.write_text('{"format": 1, "paths": {}}\n')
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_pve_schema_subset.py"), "--check", "--target", str(stale)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "out of date" in result.stderr


def test_the_subset_covers_the_paths_the_project_uses_and_carries_no_prose() -> None:
    subset = load_subset()
    assert [p for p in REQUIRED_PATHS if p not in subset] == []
    prose: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            prose.extend(
                f"{where}.{k}"
                for k in ("description", "typetext", "verbose_description")
                if isinstance(value.get(k), str)
            )
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, where)

    walk(dict(subset), "")
    assert prose == []


def test_paths_match_templates_with_literal_segments_first() -> None:
    assert match_path("/nodes/pve1/qemu/100/status/start") == (
        "/nodes/{node}/qemu/{vmid}/status/start",
        {"node": "pve1", "vmid": "100"},
    )
    assert match_path("/nodes/pve1/qemu") == ("/nodes/{node}/qemu", {"node": "pve1"})
    upid = "UPID:pve1:0001F401:001B465F:6B06A0C8:qmstart:106:root@pam!t:"
    assert match_path(f"/nodes/pve1/tasks/{upid}/log") == (
        "/nodes/{node}/tasks/{upid}/log",
        {"node": "pve1", "upid": upid},
    )
    assert match_path("/nodes/pve1/nonsense") is None
    assert match_path("relative/path") is None
    assert method_schema("PATCH", "/version") is None
    assert method_schema("get", "/version") is not None


@pytest.mark.parametrize(
    ("method", "path", "params", "errors"),
    [
        ("GET", "/nodes/pve1/qemu/abc/status/current", {}, {"vmid": "type check ('integer') failed - got 'abc'"}),
        (
            "GET",
            "/nodes/pve1/qemu/99/status/current",
            {},
            {"vmid": "invalid format - value does not look like a valid VM ID\n"},
        ),
        ("GET", "/nodes/pve1/tasks", {"limit": "-1"}, {"limit": "value must have a minimum value of 0"}),
        ("GET", "/nodes/pve1/network", {"type": "bridge", "node": "x"}, {}),
        (
            "GET",
            "/cluster/resources",
            {"type": "vms"},
            {"type": "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'"},
        ),
        (
            "GET",
            "/version",
            {"x": "1"},
            {"x": "property is not defined in schema and the schema does not allow additional properties"},
        ),
        ("POST", "/nodes/pve1/qemu/100/snapshot", {}, {"snapname": "property is missing and it is not optional"}),
        (
            "POST",
            "/nodes/pve1/qemu/100/snapshot",
            {"snapname": "1bad"},
            {"snapname": "invalid format - invalid configuration ID '1bad'\n"},
        ),
        (
            "GET",
            "/nodes/bad_node!/status",
            {},
            {"node": "invalid format - value does not look like a valid node name\n"},
        ),
        (
            "POST",
            "/nodes/pve1/qemu/100/status/start",
            {"skiplock": "yes"},
            {"skiplock": "type check ('boolean') failed - got 'yes'"},
        ),
        ("POST", "/nodes/pve1/qemu/100/agent/exec", {"command": "ls"}, {"command": "type check ('array') failed"}),
        (
            "POST",
            "/nodes/pve1/storage/local/content",
            {"filename": "x", "vmid": "100", "size": "big"},
            {"size": "value does not match the regex pattern"},
        ),
        (
            "POST",
            "/access/ticket",
            {"username": "u" * 65, "password": "p"},
            {"username": "value may only be 64 characters long"},
        ),
    ],
)
def test_bad_parameters_get_proxmox_messages(
    method: str, path: str, params: dict[str, Any], errors: dict[str, str]
) -> None:
    assert validate_parameters(method, path, params) == errors


def test_valid_calls_pass_including_indexed_keys_and_property_strings() -> None:
    assert (
        validate_parameters(
            "POST",
            "/nodes/pve1/qemu",
            {
                "vmid": "150",
                "name": "web",
                "memory": "2048",
                "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1",
                "scsi0": "local-lvm:32",
                "agent": "1",
                "ostype": "l26",
            },
        )
        == {}
    )
    assert validate_parameters("POST", "/nodes/pve1/qemu/100/agent/exec", {"command": ["uname", "-a"]}) == {}
    assert validate_parameters("GET", "/nodes/pve1/tasks", {"limit": 5, "source": "all", "errors": True}) == {}


def test_property_strings_are_checked_key_by_key() -> None:
    errors = validate_parameters("POST", "/nodes/pve1/qemu", {"vmid": "150", "net0": "virtio=zz:zz,bridge=vmbr0"})
    assert errors["net0"].startswith("invalid format - format error")
    assert "macaddr" in errors["net0"]
    bogus = validate_parameters("POST", "/nodes/pve1/qemu", {"vmid": "150", "net0": "bogus=1"})
    assert bogus == {"net0": "invalid format - invalid key in comma-separated list property: bogus\n"}
    parsed = parse_property_string(
        (method_schema("POST", "/nodes/{node}/qemu") or {})["parameters"]["properties"]["agent"]["format"],
        "1,fstrim_cloned_disks=yes",
    )
    assert parsed == {"enabled": "1", "fstrim_cloned_disks": "1"}


def test_unknown_endpoints_raise() -> None:
    with pytest.raises(UnknownEndpoint, match="Method 'GET /nope' not implemented"):
        validate_parameters("GET", "/nope", {})
    with pytest.raises(UnknownEndpoint):
        validate_parameters("PATCH", "/version", {})


def test_values_are_coerced_to_their_schema_types() -> None:
    schema = (method_schema("GET", "/nodes/{node}/tasks") or {})["parameters"]
    assert check_parameters(schema, {"node": "pve1", "limit": "5", "errors": True}) == {}
    assert coerce_parameters(schema, {"node": "pve1", "limit": "5", "errors": True, "vmid": 100}) == {
        "node": "pve1",
        "limit": 5,
        "errors": 1,
        "vmid": 100,
    }


TASK_STATUS = (method_schema("GET", "/nodes/{node}/tasks/{upid}/status") or {})["returns"]
GOOD_STATUS = {
    "upid": "UPID:x",
    "node": "pve1",
    "pid": 1,
    "pstart": 2,
    "starttime": 3,
    "type": "qmstart",
    "id": "100",
    "user": "root@pam",
    "status": "stopped",
    "exitstatus": "OK",
}


def test_the_returns_validator_accepts_a_conforming_answer() -> None:
    assert return_errors(TASK_STATUS, GOOD_STATUS) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"pid": "1"}, "data.pid: expected integer"),
        ({"pid": 1.5}, "data.pid: expected integer"),
        ({"status": "paused"}, "data.status: 'paused' is not one of"),
        ({"node": None}, "data.node: missing (not optional)"),
    ],
)
def test_the_returns_validator_rejects_wrong_answers(change: dict[str, Any], problem: str) -> None:
    assert any(p.startswith(problem) for p in return_errors(TASK_STATUS, {**GOOD_STATUS, **change}))


def test_the_returns_validator_rejects_json_true_where_proxmox_sends_0_or_1() -> None:
    schema = (method_schema("GET", "/cluster/status") or {})["returns"]
    entry = {"type": "cluster", "id": "cluster", "name": "c", "quorate": 1}
    assert return_errors(schema, [entry]) == []
    assert return_errors(schema, [{**entry, "quorate": True}]) == [
        "data[0].quorate: expected boolean (0/1), got JSON true"
    ]
    assert return_errors(schema, [{**entry, "quorate": 2}])


def test_the_returns_validator_checks_missing_keys_arrays_and_strict_extras() -> None:
    schema = (method_schema("GET", "/nodes") or {})["returns"]
    assert return_errors(schema, [{"status": "online"}]) == ["data[0].node: missing (not optional)"]
    assert return_errors(schema, {"node": "pve1"}) == ["data: expected array, got dict {'node': 'pve1'}"]
    assert return_errors(schema, [{"node": "pve1", "status": "online", "surprise": 1}]) == []
    assert return_errors(schema, [{"node": "pve1", "status": "online", "surprise": 1}], strict=True) == [
        "data[0].surprise: not defined in the schema"
    ]
    assert return_errors({"type": "null"}, None) == [] and return_errors({"type": "null"}, 0)
