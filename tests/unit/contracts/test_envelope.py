"""The envelopes as they travel, written out by hand: NATS requests and replies and error bodies. A model change that
changes any of these fails here; a model cannot vouch for itself (its own schema accepts whatever it emits). Also
scopes and the request deadline."""

from __future__ import annotations

import json
import time

import pytest
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope, decode_error, encode_error
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
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


def test_error_reply_bodies_round_trip_and_foreign_bodies_fall_back_to_the_header_code() -> None:
    info = ErrorInfo(code=ErrorCode.TIMEOUT, message="slow", retryable=True, details={"upid": "x"})
    assert decode_error("timeout", "slow", encode_error(info)) == info
    assert decode_error("not_found", "gone", b"not json").code is ErrorCode.NOT_FOUND
    assert decode_error("500", "boom", b"").code is ErrorCode.INTERNAL


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
