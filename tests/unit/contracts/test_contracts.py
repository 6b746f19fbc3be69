"""The contracts every part shares: error table, subjects, envelopes, tool schemas, settings."""

from __future__ import annotations

import time

import jsonschema
import pytest
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller, RequestEnvelope, Scope, decode_error, encode_error
from proxmox_mcp_contracts.errors import HTTP_STATUS, ErrorCode, ErrorInfo, ServiceFailure
from proxmox_mcp_contracts.settings import cluster_from_legacy_env
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, api_subject, endpoint_name, ssh_subject
from pydantic import BaseModel, ValidationError

ARG_MODELS: list[type[BaseModel]] = [t.ExecuteCommandArgs, t.ListVmsArgs, t.VmStatusArgs, t.VmActionArgs,
                                     t.NodeStatusArgs, t.ProxmoxApiArgs, t.TaskStatusArgs]


def test_every_error_code_has_the_documented_http_status() -> None:
    assert {code.value: HTTP_STATUS[code] for code in ErrorCode} == {
        "invalid_argument": 400, "unauthenticated": 401, "permission_denied": 403, "policy_denied": 403,
        "not_found": 404, "conflict": 409, "rate_limited": 429, "timeout": 504, "unavailable": 503,
        "upstream_error": 502, "internal": 500,
    }


def test_tool_error_text_starts_with_the_code() -> None:
    failure = ServiceFailure(ErrorCode.POLICY_DENIED, "pipes are not allowed")
    assert str(failure) == "policy_denied: pipes are not allowed"


def test_error_reply_bodies_round_trip_and_foreign_bodies_fall_back_to_the_header_code() -> None:
    info = ErrorInfo(code=ErrorCode.TIMEOUT, message="slow", retryable=True, details={"upid": "x"})
    assert decode_error("timeout", "slow", encode_error(info)) == info
    assert decode_error("not_found", "gone", b"not json").code is ErrorCode.NOT_FOUND
    assert decode_error("500", "boom", b"").code is ErrorCode.INTERNAL


def test_subjects_carry_cluster_and_op_and_refuse_bad_cluster_names() -> None:
    assert ssh_subject("default", SshOp.EXEC) == "pmcp.v1.default.ssh.exec"
    assert api_subject("lab-2", ApiOp.LIST_VMS) == "pmcp.v1.lab-2.api.list_vms"
    assert endpoint_name("lab-2", ApiOp.VM_STATUS) == "lab-2-vm_status"
    for bad in ("", "a.b", "UPPER", "x*", "has space", "a>"):
        with pytest.raises(ValueError):
            ssh_subject(bad, SshOp.EXEC)


def test_scopes_are_ordered_and_include_the_ones_below() -> None:
    assert Scope.ADMIN.includes(Scope.EXEC) and Scope.EXEC.includes(Scope.OPERATE)
    assert Scope.OPERATE.includes(Scope.READ) and not Scope.READ.includes(Scope.OPERATE)


def test_envelope_deadline_is_enforced() -> None:
    caller = Caller(token_id="t", scope=Scope.READ)
    past = RequestEnvelope(op="x", deadline=time.time() - 1, caller=caller)
    with pytest.raises(ServiceFailure) as excinfo:
        past.require_time_left()
    assert excinfo.value.code is ErrorCode.TIMEOUT
    assert RequestEnvelope(op="x", deadline=time.time() + 5, caller=caller).require_time_left() > 4


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


def test_legacy_environment_names_build_one_cluster() -> None:
    cluster = cluster_from_legacy_env({
        "SSH_HOST": "10.0.0.5", "SSH_USER": "pmcp", "SSH_PORT": "2222", "SSH_KEY_PATH": "/k",
        "SSH_KEY_PASSPHRASE": "pp", "PROXMOX_HOST": "10.0.0.6", "PROXMOX_USER": "pmcp@pve",
        "PROXMOX_TOKEN_NAME": "mcp", "PROXMOX_TOKEN_VALUE": "secret-uuid", "PROXMOX_VERIFY_SSL": "false",
    })
    assert cluster.hosts[0].address == "10.0.0.5" and cluster.ssh.port == 2222 and cluster.ssh.user == "pmcp"
    assert cluster.api.host == "10.0.0.6" and cluster.api.verify_ssl is False
    assert cluster.api.token_value is not None and cluster.api.token_value.get_secret_value() == "secret-uuid"
    assert "secret-uuid" not in repr(cluster) and "pp" not in repr(cluster.ssh)
    with pytest.raises(ValueError):
        cluster_from_legacy_env({"SSH_HOST": "h", "PROXMOX_VERIFY_SSL": "maybe"})
