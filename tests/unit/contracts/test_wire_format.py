"""The contracts as they travel, written out by hand: NATS request and reply envelopes, error bodies, and the
tool schemas an MCP client reads. A model change that changes any of these fails here; a model cannot vouch
for itself (its own schema accepts whatever it emits)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope, decode_error, encode_error
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from pydantic import ValidationError

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# What the gateway puts on pmcp.v1.lab-2.ssh.exec for one execute_command call.
RECORDED_REQUEST = (
    b'{"request_id":"5f1d3c2a9b8e4f70a1b2c3d4e5f60718","op":"exec","cluster":"lab-2",'
    b'"args":{"command":"uptime","timeout":30,"node":"pve1"},"deadline":1767225600.5,'
    b'"caller":{"token_id":"ops-bot","scope":"exec","command_profile":"operator","address":"10.0.0.7"},'
    b'"trace":{"traceparent":"' + TRACEPARENT.encode() + b'"},'
    b'"heartbeat_subject":"_INBOX.hb.7","heartbeat_interval":0.5}'
)
# What a worker answers to it.
RECORDED_REPLY = (
    b'{"request_id":"5f1d3c2a9b8e4f70a1b2c3d4e5f60718","result":{"node":"pve1","command":"uptime","exit_code":0,'
    b'"stdout":" 10:00:00 up 3 days\\n","stderr":"","truncated":false,"duration_ms":12.5}}'
)
# The body of a worker's error reply (Nats-Service-Error-Code: timeout).
RECORDED_ERROR_BODY = (
    b'{"code":"timeout","message":"the command did not finish within 30s on node pve1; it was stopped",'
    b'"retryable":false,"details":{"stdout_bytes":120,"stderr_bytes":0}}'
)


def test_a_recorded_request_envelope_decodes_field_by_field() -> None:
    envelope = RequestEnvelope.model_validate_json(RECORDED_REQUEST)
    assert envelope.request_id == "5f1d3c2a9b8e4f70a1b2c3d4e5f60718"
    assert envelope.op == "exec"
    assert envelope.cluster == "lab-2"
    assert envelope.args == {"command": "uptime", "timeout": 30, "node": "pve1"}
    assert envelope.deadline == 1767225600.5
    assert envelope.caller.token_id == "ops-bot"
    assert envelope.caller.scope is Scope.EXEC
    assert envelope.caller.command_profile == "operator"
    assert envelope.caller.address == "10.0.0.7"
    assert envelope.trace == {"traceparent": TRACEPARENT}
    assert envelope.heartbeat_subject == "_INBOX.hb.7"
    assert envelope.heartbeat_interval == 0.5


def test_a_request_envelope_encodes_exactly_the_recorded_fields() -> None:
    envelope = RequestEnvelope(
        request_id="5f1d3c2a9b8e4f70a1b2c3d4e5f60718", op="exec", cluster="lab-2",
        args={"command": "uptime", "timeout": 30, "node": "pve1"}, deadline=1767225600.5,
        caller=Caller(token_id="ops-bot", scope=Scope.EXEC, command_profile="operator", address="10.0.0.7"),
        trace={"traceparent": TRACEPARENT}, heartbeat_subject="_INBOX.hb.7", heartbeat_interval=0.5,
    )
    assert json.loads(envelope.model_dump_json()) == json.loads(RECORDED_REQUEST)


def test_a_minimal_request_envelope_fills_the_documented_defaults() -> None:
    envelope = RequestEnvelope.model_validate_json(
        b'{"op":"list_vms","deadline":1767225600.0,"caller":{"token_id":"ro","scope":"read"}}'
    )
    assert len(envelope.request_id) == 32 and int(envelope.request_id, 16) >= 0
    assert (envelope.cluster, envelope.args, envelope.trace) == ("default", {}, {})
    assert (envelope.heartbeat_subject, envelope.heartbeat_interval) == (None, 1.0)
    assert (envelope.caller.command_profile, envelope.caller.address) == ("readonly", None)


@pytest.mark.parametrize("body", [
    b'{"op":"exec","deadline":1767225600.0}',  # no caller
    b'{"op":"exec","caller":{"token_id":"t","scope":"exec"}}',  # no deadline
    b'{"op":"exec","deadline":1767225600.0,"caller":{"token_id":"t","scope":"root"}}',  # unknown scope
    b'{"op":"exec","deadline":1767225600.0,"caller":{"token_id":"t","scope":"exec"},"heartbeat_interval":0}',
    b'{"op":"exec","deadline":"tomorrow","caller":{"token_id":"t","scope":"exec"}}',
    b'not json',
])
def test_a_malformed_request_envelope_is_refused(body: bytes) -> None:
    with pytest.raises(ValidationError):
        RequestEnvelope.model_validate_json(body)


def test_a_recorded_reply_envelope_decodes_and_encodes_unchanged() -> None:
    reply = ReplyEnvelope.model_validate_json(RECORDED_REPLY)
    assert reply.request_id == "5f1d3c2a9b8e4f70a1b2c3d4e5f60718"
    assert reply.result == {"node": "pve1", "command": "uptime", "exit_code": 0, "stdout": " 10:00:00 up 3 days\n",
                            "stderr": "", "truncated": False, "duration_ms": 12.5}
    assert json.loads(reply.model_dump_json()) == json.loads(RECORDED_REPLY)
    with pytest.raises(ValidationError):
        ReplyEnvelope.model_validate_json(b'{"result":{}}')


def test_an_error_body_carries_code_message_retryable_and_details() -> None:
    info = ErrorInfo(code=ErrorCode.TIMEOUT, retryable=False, details={"stdout_bytes": 120, "stderr_bytes": 0},
                     message="the command did not finish within 30s on node pve1; it was stopped")
    assert json.loads(encode_error(info)) == json.loads(RECORDED_ERROR_BODY)
    decoded = decode_error("timeout", "ignored when the body is whole", RECORDED_ERROR_BODY)
    assert decoded.code is ErrorCode.TIMEOUT
    assert decoded.message == "the command did not finish within 30s on node pve1; it was stopped"
    assert decoded.retryable is False
    assert decoded.details == {"stdout_bytes": 120, "stderr_bytes": 0}
    assert decoded.http_status == 504


def test_an_error_body_with_an_unknown_code_falls_back_to_the_header() -> None:
    decoded = decode_error("conflict", "guest is locked", b'{"code":"teapot","message":"x"}')
    assert (decoded.code, decoded.message) == (ErrorCode.CONFLICT, "guest is locked")


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
