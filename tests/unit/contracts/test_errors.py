"""The error table: codes, their HTTP statuses, and how a failure reads."""

from __future__ import annotations

from proxmox_mcp_contracts.errors import HTTP_STATUS, ErrorCode, ServiceFailure


def test_every_error_code_has_the_documented_http_status() -> None:
    assert {code.value: HTTP_STATUS[code] for code in ErrorCode} == {
        "invalid_argument": 400, "unauthenticated": 401, "permission_denied": 403, "policy_denied": 403,
        "not_found": 404, "conflict": 409, "rate_limited": 429, "timeout": 504, "unavailable": 503,
        "upstream_error": 502, "internal": 500,
    }


def test_tool_error_text_starts_with_the_code() -> None:
    failure = ServiceFailure(ErrorCode.POLICY_DENIED, "pipes are not allowed")
    assert str(failure) == "policy_denied: pipes are not allowed"
