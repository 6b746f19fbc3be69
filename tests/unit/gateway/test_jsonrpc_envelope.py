"""The legacy-era envelope check decides like the SDK on every valid message and refuses the rest briefly."""

from __future__ import annotations

import pytest
from proxmox_mcp_gateway.jsonrpc_envelope import BAD_ID, NOT_A_MESSAGE, NOT_JSON, envelope_problem

VALID = [
    '{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}',
    '{"jsonrpc": "2.0", "id": "a-string", "method": "tools/list"}',
    '{"jsonrpc": "2.0", "id": -3, "method": "ping"}',
    '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
    '{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}',
    '{"jsonrpc": "2.0", "id": 0, "result": {"action": "accept", "content": {"confirm": true}}}',
    '{"jsonrpc": "2.0", "id": 5, "error": {"code": -1, "message": "user declined"}}',
]


@pytest.mark.parametrize("body", VALID)
def test_every_kind_of_valid_message_passes(body: str) -> None:
    assert envelope_problem(body.encode()) is None


@pytest.mark.parametrize("body", [
    '{"jsonrpc": "1.0", "id": 1, "method": "ping"}', "[]", '[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]',
    '"ping"', "null", "42", '{"jsonrpc": "2.0", "id": 1}', '{"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]}',
    '{"jsonrpc": "2.0", "method": 5}',
])
def test_json_that_is_no_jsonrpc_message_is_an_invalid_request(body: str) -> None:
    assert envelope_problem(body.encode()) is NOT_A_MESSAGE


@pytest.mark.parametrize("request_id", ["null", "true", "false", "1.5", "1.0", "{}", "[1]"])
def test_a_request_id_that_is_neither_string_nor_integer_is_an_invalid_request(request_id: str) -> None:
    body = f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "tools/list"}}'
    assert envelope_problem(body.encode()) is BAD_ID


@pytest.mark.parametrize("body", [b"", b"{", b'{"jsonrpc": "2.0",}', b"\xff\xfe", b"[" * 20_000])
def test_a_body_that_is_not_json_is_a_parse_error(body: bytes) -> None:
    assert envelope_problem(body) is NOT_JSON
