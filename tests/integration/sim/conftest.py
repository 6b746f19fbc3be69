"""One simulator per test session for the sim tests; tests that change state use their own guests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.sim import SimInfo, reset_sim, start_sim


@pytest.fixture(scope="session")
def pve_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    info = start_sim(tmp_path_factory.mktemp("pve-sim"), seed=7, nodes=3, guests=8, task_duration=0.2)
    try:
        yield info
    finally:
        info.proc.stop()


class Api:
    """A keep-alive HTTPS client for /api2/json that returns the raw response."""

    def __init__(self, info: SimInfo, header: str | None) -> None:
        self.info = info
        self.session = requests.Session()
        if header:
            self.session.headers["Authorization"] = header

    def request(self, method: str, path: str, **params: Any) -> requests.Response:
        url = f"{self.info.api_url}{path}"
        # verify per request: REQUESTS_CA_BUNDLE in the environment would override a session-level setting
        if method in ("GET", "DELETE"):
            return self.session.request(method, url, params=params, timeout=10, verify=self.info.cert_file)
        return self.session.request(method, url, data=params, timeout=10, verify=self.info.cert_file)

    def get(self, path: str, **params: Any) -> Any:
        response = self.request("GET", path, **params)
        assert response.status_code == 200, (path, response.status_code, response.reason, response.text)
        return response.json()["data"]

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="session")
def admin(pve_sim: SimInfo) -> Iterator[Api]:
    api = Api(pve_sim, pve_sim.admin_token["header"])
    yield api
    api.close()


@pytest.fixture(scope="session")
def readonly(pve_sim: SimInfo) -> Iterator[Api]:
    api = Api(pve_sim, pve_sim.readonly_token["header"])
    yield api
    api.close()


def ticket_api(info: SimInfo, username: str = "root@pam", password: str | None = None) -> Api:
    """An Api logged in with a ticket (cookie + CSRF header), as the GUI and proxmoxer's password mode do."""
    api = Api(info, None)
    response = api.request("POST", "/access/ticket", username=username, password=password or info.root_password)
    assert response.status_code == 200, response.reason
    data = response.json()["data"]
    api.session.cookies.set("PVEAuthCookie", data["ticket"])
    api.session.headers["CSRFPreventionToken"] = data["CSRFPreventionToken"]
    return api


@pytest.fixture(scope="session")
def root_ticket(pve_sim: SimInfo) -> Iterator[Api]:
    api = ticket_api(pve_sim)
    yield api
    api.close()


@pytest.fixture
def fresh_sim(pve_sim: SimInfo) -> SimInfo:
    """The session simulator, back in its seeded state."""
    reset_sim(pve_sim)
    return pve_sim
