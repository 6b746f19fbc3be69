"""User/password auth: one login, renewal by age, and one re-login when Proxmox refuses the ticket (401)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from proxmox_mcp_api_worker import pve_client
from proxmox_mcp_api_worker.pve_client import HttpsBackend, TicketAuth
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ApiSettings
from pydantic import SecretStr


class Logins:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, user: str, password: str, timeout: float) -> tuple[str, str]:
        self.count += 1
        return f"ticket-{self.count}", f"csrf-{self.count}"


def _response(status: int, data: Any = None, reason: str = "") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response._content = json.dumps({"data": data}).encode()
    return response


def test_one_login_serves_many_requests_until_the_ticket_ages() -> None:
    auth, logins = TicketAuth("root@pam", "pw", verify_ssl=True, timeout=5), Logins()
    auth.ensure(logins, 5)
    auth.ensure(logins, 5)
    assert logins.count == 1 and auth.ticket == "ticket-1"
    auth._born -= pve_client.TICKET_RENEW_AGE + 1
    auth.ensure(logins, 5)
    assert logins.count == 2 and auth.ticket == "ticket-2"


def test_a_refused_ticket_is_replaced_but_a_newer_one_is_kept() -> None:
    auth, logins = TicketAuth("root@pam", "pw", verify_ssl=True, timeout=5), Logins()
    auth.ensure(logins, 5)
    auth.invalidate("some-older-ticket")
    auth.ensure(logins, 5)
    assert logins.count == 1
    auth.invalidate("ticket-1")
    assert auth.ticket == "ticket-1"  # requests under way still carry a ticket
    auth.ensure(logins, 5)
    assert logins.count == 2


def test_writes_carry_the_csrf_token_and_reads_do_not() -> None:
    auth = TicketAuth("root@pam", "pw", verify_ssl=True, timeout=5)
    auth.ensure(Logins(), 5)
    get = auth(requests.Request("GET", "https://pve/api2/json/version").prepare())
    post = auth(requests.Request("POST", "https://pve/api2/json/nodes").prepare())
    assert get.headers["Cookie"] == "PVEAuthCookie=ticket-1" and "CSRFPreventionToken" not in get.headers
    assert post.headers["CSRFPreventionToken"] == "csrf-1"


def _password_backend(monkeypatch: pytest.MonkeyPatch, answers: list[requests.Response]) -> list[str]:
    backend = HttpsBackend("lab", ApiSettings(password=SecretStr("pw"), fingerprint="ab" * 32), "127.0.0.1")
    sent: list[str] = []

    def send(method: str, path: str, params: Any, timeout: float, auth: Any = None) -> requests.Response:
        sent.append(f"{method} {path}")
        if path == "/access/ticket":
            return _response(200, {"ticket": f"t{len(sent)}", "CSRFPreventionToken": "c"})
        return answers.pop(0)

    monkeypatch.setattr(backend, "_send", send)
    sent.append(str(backend._request_blocking("GET", "/version", None, 5)))
    return sent


def test_a_401_with_a_ticket_logs_in_once_more_and_repeats_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _password_backend(monkeypatch, [_response(401, reason="invalid ticket"), _response(200, {"v": 1})])
    assert sent == ["POST /access/ticket", "GET /version", "POST /access/ticket", "GET /version", "{'v': 1}"]


def test_a_second_401_is_reported_as_rejected_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServiceFailure) as caught:
        _password_backend(monkeypatch, [_response(401), _response(401)])
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR and "(401)" in caught.value.info.message
