"""Protocol edges third-party fuzzers found (issue 17), sent as exact messages over real HTTP to the demo's gateway:
malformed JSON-RPC and request ids that are neither string nor integer get -32600 (-32700 for a body that is not
JSON) in both protocol eras, a known path asked with the wrong HTTP method 405 with Allow, an unknown list cursor
-32602. No error carries internals: the input echoed beyond a short excerpt, pydantic, a URL or a Python type
name. Valid messages and notifications are answered as before."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from tests.support.demo import DemoStack
from tests.support.mcp_client import stdio_mcp_client

INVALID_REQUEST = -32600
PARSE_ERROR = -32700
INVALID_PARAMS = -32602

MALFORMED = {
    "jsonrpc 1.0": '{"jsonrpc": "1.0", "id": 7, "method": "tools/list"}',
    "batch array": '[{"jsonrpc": "2.0", "id": 7, "method": "tools/list"}]',
    "bare string": '"tools/list please, the whole catalogue"',
    "null": "null",
    "request without method": '{"jsonrpc": "2.0", "id": 7, "params": {"cursor": "x"}}',
    "params as an array": '{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": ["one", "two"]}',
}
BAD_IDS = {"null": "null", "true": "true", "a float": "1.5", "an object": '{"nested": "request-id-object"}'}
PAGINATED = ["tools/list", "resources/list", "resources/templates/list", "prompts/list"]
LIST_KEY = {"tools/list": "tools", "resources/list": "resources", "resources/templates/list": "resourceTemplates",
            "prompts/list": "prompts"}
GARBAGE_CURSOR = "eyJvZmZzZXQiOiA5OTk5OTl9-not-a-cursor-this-server-issued"

INTERNALS = re.compile(r"pydantic|https?://|www\.|\b(?:dict|list|str|int|float|bool|NoneType|bytes|tuple)\b"
                       r"|JSONRPC[A-Z]\w*|ValidationError|Traceback|input_value|input_type|model_type")


def assert_clean(error: Any, sent: str, excerpt: int = 20) -> None:
    """The error names no internals and quotes at most `excerpt` characters of what was sent in a row."""
    text = json.dumps(error)
    found = INTERNALS.search(text)
    assert found is None, f"internal detail {found.group(0)!r} in {text}"
    echoed = [sent[i:i + excerpt + 1] for i in range(len(sent) - excerpt) if sent[i:i + excerpt + 1] in text]
    assert not echoed, f"the input is echoed back: {echoed[0]!r} in {text}"


def reply_of(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of a reply, whether sent as JSON or as the last event of an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        data = [d for d in data if d]
        assert data, response.text
        return json.loads(data[-1])
    return response.json()


@dataclass
class Wire:
    """Raw POSTs to /mcp: in one initialized legacy-era session, or 2026-era (no session, the version header)."""

    client: httpx2.Client
    url: str
    session_id: str

    def legacy(self, body: str) -> httpx2.Response:
        headers = {"mcp-session-id": self.session_id, "mcp-protocol-version": LATEST_HANDSHAKE_VERSION}
        return self.client.post(self.url, content=body.encode(), headers=headers)

    def modern(self, body: str, method: str = "tools/list") -> httpx2.Response:
        headers = {"mcp-protocol-version": LATEST_MODERN_VERSION, "mcp-method": method}
        return self.client.post(self.url, content=body.encode(), headers=headers)


def modern_request(method: str, params: dict[str, Any] | None = None, request_id: int = 9) -> str:
    meta = {PROTOCOL_VERSION_META_KEY: LATEST_MODERN_VERSION, CLIENT_CAPABILITIES_META_KEY: {}}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                       "params": {**(params or {}), "_meta": meta}})


@pytest.fixture(scope="module")
def wire(demo: DemoStack) -> Iterator[Wire]:
    headers = {"Authorization": f"Bearer {demo.token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    with httpx2.Client(headers=headers, timeout=30) as client:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
                           "clientInfo": {"name": "edge-test", "version": "1"}}}
        opened = client.post(demo.mcp_url, json=init)
        assert opened.status_code == 200, opened.text
        session_id = opened.headers["mcp-session-id"]
        built = Wire(client=client, url=demo.mcp_url, session_id=session_id)
        initialized = built.legacy('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        assert initialized.status_code == 202, initialized.text
        yield built
        client.delete(demo.mcp_url, headers={"mcp-session-id": session_id})


@pytest.fixture
def http(demo: DemoStack) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=demo.base_url, headers={"Authorization": f"Bearer {demo.token}"},
                       timeout=30) as client:
        yield client


# Case 1: malformed JSON-RPC.

@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_message_in_a_legacy_session_gets_invalid_request_without_internals(wire: Wire, body: str) -> None:
    response = wire.legacy(body)
    assert response.status_code == 400, response.text
    reply = reply_of(response)
    assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST, reply
    assert_clean(reply["error"], body)


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_message_in_the_2026_era_gets_invalid_request_without_internals(wire: Wire, body: str) -> None:
    response = wire.modern(body)
    assert response.status_code == 400, response.text
    reply = reply_of(response)
    assert reply["error"]["code"] == INVALID_REQUEST, reply
    assert_clean(reply["error"], body)


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_a_body_that_is_not_json_gets_parse_error_without_internals(wire: Wire, era: str) -> None:
    body = '{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"cursor": '
    response = wire.legacy(body) if era == "legacy" else wire.modern(body)
    assert response.status_code == 400, response.text
    reply = reply_of(response)
    assert reply["id"] is None and reply["error"]["code"] == PARSE_ERROR, reply
    assert_clean(reply["error"], body)


# Case 2: request ids that are neither string nor integer.

@pytest.mark.parametrize("request_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_request_with_a_bad_id_in_a_legacy_session_gets_invalid_request_not_202(wire: Wire, request_id: str) -> None:
    body = f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "tools/list"}}'
    response = wire.legacy(body)
    assert response.status_code == 400, response.text
    reply = reply_of(response)
    assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST, reply
    assert_clean(reply["error"], body)


@pytest.mark.parametrize("request_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_request_with_a_bad_id_in_the_2026_era_gets_invalid_request(wire: Wire, request_id: str) -> None:
    body = modern_request("tools/list").replace('"id": 9', f'"id": {request_id}')
    response = wire.modern(body)
    assert response.status_code == 400, response.text
    reply = reply_of(response)
    assert reply["error"]["code"] == INVALID_REQUEST, reply
    assert_clean(reply["error"], body)


def test_valid_messages_in_a_legacy_session_are_answered_as_before(wire: Wire) -> None:
    for body in [*MALFORMED.values(), '{"jsonrpc": "2.0", "id": null, "method": "tools/list"}']:
        wire.legacy(body)  # refused messages leave the session as it was
    notification = wire.legacy('{"jsonrpc": "2.0", "method": "notifications/cancelled", '
                               '"params": {"requestId": 424242}}')
    assert notification.status_code == 202 and notification.content == b"", notification.text
    stray_response = wire.legacy('{"jsonrpc": "2.0", "id": 424243, "result": {}}')
    assert stray_response.status_code == 202, stray_response.text
    for request_id in ['"edge-string-id"', "0", "-5"]:
        response = wire.legacy(f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "tools/list"}}')
        assert response.status_code == 200, response.text
        reply = reply_of(response)
        assert reply["id"] == json.loads(request_id) and reply["result"]["tools"], reply


# Case 3: a known path asked with the wrong HTTP method.

@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/health", "GET"),
    ("POST", "/health/ready", "GET"),
    ("GET", "/api/mcp/tools/call", "POST"),
    ("PUT", "/api/mcp/tools/list", "POST"),
    ("PATCH", "/api/mcp", "GET"),
    ("POST", "/metrics", "GET"),
])
def test_a_known_path_asked_with_the_wrong_method_gets_405_with_allow(
    http: httpx2.Client, method: str, path: str, allow: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    error = response.json()["error"]
    assert error["code"] == "invalid_argument" and error["details"]["allow"] == [allow], error
    assert_clean(error, f"{method} {path}")


def test_the_mcp_endpoint_keeps_its_own_405_with_allow(http: httpx2.Client) -> None:
    response = http.put("/mcp")
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST", "DELETE"}


@pytest.mark.parametrize(("method", "path"), [("GET", "/no-such-path"), ("DELETE", "/api/mcp/no-such-tool"),
                                              ("POST", "/healthz")])
def test_an_unknown_path_still_gets_404(http: httpx2.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 404, response.text
    assert "allow" not in response.headers


# Case 4: an unknown pagination cursor.

@pytest.mark.parametrize("method", PAGINATED)
def test_an_unknown_cursor_in_a_legacy_session_gets_invalid_params(wire: Wire, method: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 31, "method": method, "params": {"cursor": GARBAGE_CURSOR}})
    response = wire.legacy(body)
    assert response.status_code == 200, response.text  # the error travels on the request's SSE stream
    reply = reply_of(response)
    assert reply["id"] == 31 and reply["error"]["code"] == INVALID_PARAMS, reply
    assert_clean(reply["error"], body)
    whole = reply_of(wire.legacy(json.dumps({"jsonrpc": "2.0", "id": 32, "method": method})))
    assert whole["result"][LIST_KEY[method]], whole


@pytest.mark.parametrize("method", PAGINATED)
def test_an_unknown_cursor_in_the_2026_era_gets_invalid_params(wire: Wire, method: str) -> None:
    body = modern_request(method, {"cursor": GARBAGE_CURSOR})
    response = wire.modern(body, method)
    assert response.status_code == 400, response.text
    reply = reply_of(response)
    assert reply["id"] == 9 and reply["error"]["code"] == INVALID_PARAMS, reply
    assert_clean(reply["error"], body)
    whole = reply_of(wire.modern(modern_request(method), method))
    assert whole["result"][LIST_KEY[method]], whole


async def test_an_unknown_cursor_over_stdio_gets_invalid_params(demo: DemoStack, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", "stdio"]
    with open(tmp_path / "stdio.log", "w") as errlog:
        async with stdio_mcp_client(argv, {"NATS_URL": demo.nats_url, "LOG_LEVEL": "WARNING"}, errlog) as client:
            assert (await client.list_tools()).tools
            with pytest.raises(MCPError) as refused:
                await client.list_tools(cursor=GARBAGE_CURSOR, cache_mode="bypass")
    assert refused.value.code == INVALID_PARAMS
    assert_clean({"message": refused.value.message}, GARBAGE_CURSOR)
