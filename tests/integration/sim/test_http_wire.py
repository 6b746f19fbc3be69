"""The HTTPS face on the wire: headers, reason phrases, auth shapes, tickets and CSRF, faults, reset."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.integration.sim.conftest import Api, ticket_api
from tests.support.sim import SimInfo, clear_sim_faults, reset_sim, sim_faults, sim_requests


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    info: SimInfo, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> RawResponse:
    connection = http.client.HTTPSConnection(info.host, info.api_port, context=info.ssl_context(), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return RawResponse(response.status, response.reason, dict(response.headers), response.read())
    finally:
        connection.close()


def no_json_booleans(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, dict):
        return all(no_json_booleans(v) for v in value.values())
    if isinstance(value, list):
        return all(no_json_booleans(v) for v in value)
    return True


def test_answers_carry_the_pve_server_header_and_the_data_envelope(admin: Api) -> None:
    response = admin.request("GET", "/version")
    assert response.headers["Server"] == "pve-api-daemon/3.0"
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert set(response.json()) == {"data"}


def test_booleans_travel_as_0_and_1(admin: Api, pve_sim: SimInfo) -> None:
    node = pve_sim.nodes[0]
    for path in (
        "/cluster/status",
        "/cluster/resources",
        f"/nodes/{node}/storage",
        f"/nodes/{node}/network",
        f"/nodes/{node}/qemu",
        "/access/users?full=1",
    ):
        data = admin.get(path)
        assert no_json_booleans(data), path
    assert {entry["quorate"] for entry in admin.get("/cluster/status") if entry["type"] == "cluster"} == {1}


def test_the_reason_phrase_is_the_first_line_of_the_message(admin: Api) -> None:
    response = admin.request("GET", "/nodes/pve1/qemu/999/status/current")
    assert response.status_code == 500
    assert response.reason == "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    assert response.json() == {
        "data": None,
        "message": "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n",
    }


def test_an_unknown_path_is_501_not_implemented(admin: Api) -> None:
    response = admin.request("GET", "/nodes/pve1/bogus")
    assert (response.status_code, response.reason) == (501, "Method 'GET /nodes/pve1/bogus' not implemented")


def test_an_unknown_node_is_refused_like_a_failed_proxy_lookup(admin: Api) -> None:
    response = admin.request("GET", "/nodes/nosuchnode/status")
    assert response.status_code == 500
    assert response.reason.startswith("hostname lookup 'nosuchnode' failed")


def test_parameter_errors_name_each_bad_parameter(admin: Api) -> None:
    response = admin.request("GET", "/cluster/resources", type="vms", extra="1")
    assert (response.status_code, response.reason) == (400, "Parameter verification failed.")
    assert response.json()["errors"] == {
        "type": "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'",
        "extra": "property is not defined in schema and the schema does not allow additional properties",
    }


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "No ticket"),
        ({"Authorization": "PVEAPIToken=root@pam!pmcp=00000000-0000-4000-8000-000000000000"}, "invalid token value!"),
        ({"Authorization": "PVEAPIToken=root@pam!nosuch=x"}, "no such token 'nosuch' for user 'root@pam'"),
        ({"Cookie": "PVEAuthCookie=PVE:root@pam:6745A1B2::forged"}, "invalid PVE ticket"),
    ],
)
def test_bad_credentials_get_401_with_empty_data(pve_sim: SimInfo, headers: dict[str, str], reason: str) -> None:
    response = raw_request(pve_sim, "GET", "/api2/json/nodes", headers)
    assert (response.status, response.reason) == (401, reason)
    assert response.json() == {"data": None}


def test_a_wrong_password_gets_401_authentication_failure(pve_sim: SimInfo) -> None:
    response = requests.post(
        f"{pve_sim.api_url}/access/ticket",
        data={"username": "root@pam", "password": "nope"},
        verify=pve_sim.cert_file,
        timeout=10,
    )
    assert (response.status_code, response.reason) == (401, "authentication failure")


def test_a_ticket_needs_the_csrf_token_for_writes_and_renews_itself(pve_sim: SimInfo) -> None:
    api = ticket_api(pve_sim)
    try:
        assert api.get("/version")["release"] == "9.1"
        csrf = api.session.headers.pop("CSRFPreventionToken")
        refused = api.request("POST", "/nodes/pve1/qemu/999/status/start")
        assert (refused.status_code, refused.reason) == (401, "Permission denied - invalid csrf token")
        api.session.headers["CSRFPreventionToken"] = csrf
        assert api.request("POST", "/nodes/pve1/qemu/999/status/start").status_code == 500  # past auth
        ticket = api.session.cookies["PVEAuthCookie"]
        renewed = api.request("POST", "/access/ticket", username="root@pam", password=ticket)
        assert renewed.status_code == 200
        assert renewed.json()["data"]["ticket"].startswith("PVE:root@pam:")
    finally:
        api.close()


def test_keep_alive_connections_serve_many_requests_and_errors_close_them(pve_sim: SimInfo) -> None:
    connection = http.client.HTTPSConnection(pve_sim.host, pve_sim.api_port, context=pve_sim.ssl_context(), timeout=10)
    headers = {"Authorization": pve_sim.admin_token["header"]}
    for _ in range(3):
        connection.request("GET", "/api2/json/version", headers=headers)
        response = connection.getresponse()
        assert response.status == 200 and response.headers["Connection"] == "Keep-Alive"
        response.read()
    connection.request("GET", "/api2/json/nope", headers=headers)
    response = connection.getresponse()
    assert response.status == 501 and response.headers["Connection"] == "close"
    connection.close()


def test_chunked_requests_and_bodies_on_get_are_refused_like_pve(pve_sim: SimInfo) -> None:
    headers = {"Authorization": pve_sim.admin_token["header"], "Transfer-Encoding": "chunked"}
    response = raw_request(pve_sim, "POST", "/api2/json/nodes/pve1/qemu", headers, body=iter([b"vmid=900"]))
    assert (response.status, response.reason) == (501, "chunked transfer encoding not supported")
    response = raw_request(
        pve_sim, "GET", "/api2/json/version", {"Authorization": pve_sim.admin_token["header"]}, b"x=1"
    )
    assert (response.status, response.reason) == (501, "Unexpected content for method 'GET'")


def test_large_answers_are_gzipped_when_the_client_accepts_it(pve_sim: SimInfo) -> None:
    response = raw_request(
        pve_sim,
        "GET",
        "/api2/json/cluster/resources",
        {"Authorization": pve_sim.admin_token["header"], "Accept-Encoding": "gzip"},
    )
    assert response.headers["Content-Encoding"] == "gzip"


def test_json_bodies_are_accepted_like_form_bodies(admin: Api, pve_sim: SimInfo) -> None:
    response = admin.session.post(
        f"{pve_sim.api_url}/nodes/pve1/qemu/100/status/start",
        json={"timeout": "x"},
        verify=pve_sim.cert_file,
        timeout=10,
    )
    assert response.status_code == 400 and "timeout" in response.json()["errors"]


def test_the_control_endpoint_needs_the_admin_token(pve_sim: SimInfo) -> None:
    for headers in ({}, {"Authorization": pve_sim.readonly_token["header"]}):
        response = raw_request(pve_sim, "POST", "/_sim/faults", headers, b'{"rules": []}')
        assert response.status == 401


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "("},
        {"error_rate": 2},
        {"status": 200},
        {"latency_ms": -1},
        {"method": "PATCH"},
        {"bogus": 1},
        "not-an-object",
    ],
)
def test_bad_fault_rules_are_rejected_and_change_nothing(pve_sim: SimInfo, rule: Any) -> None:
    headers = {"Authorization": pve_sim.admin_token["header"]}
    response = raw_request(pve_sim, "POST", "/_sim/faults", headers, json.dumps({"rules": [rule]}).encode())
    assert response.status == 400 and response.json()["error"]
    assert raw_request(pve_sim, "POST", "/_sim/faults", headers, b"{not json").status == 400
    current = raw_request(pve_sim, "GET", "/_sim/faults", headers)
    assert current.json() == {"rules": []}


def test_injected_errors_and_latency_apply_to_matching_paths_only(admin: Api, pve_sim: SimInfo) -> None:
    try:
        sim_faults(
            pve_sim,
            [
                {"path": "^/version$", "error_rate": 1.0, "status": 503, "message": "maintenance\nsecond line"},
                {"path": "^/nodes$", "method": "GET", "latency_ms": 300},
            ],
        )
        failing = admin.request("GET", "/version")
        assert (failing.status_code, failing.reason) == (503, "maintenance")
        started = time.monotonic()
        assert admin.request("GET", "/nodes").status_code == 200
        assert time.monotonic() - started >= 0.3
        assert admin.request("GET", "/cluster/status").status_code == 200
    finally:
        clear_sim_faults(pve_sim)
    assert admin.request("GET", "/version").status_code == 200


def test_a_hanging_path_can_be_cut_by_the_client_timeout(pve_sim: SimInfo) -> None:
    try:
        sim_faults(pve_sim, [{"path": "^/cluster/tasks$", "latency_ms": 5000}])
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(
                f"{pve_sim.api_url}/cluster/tasks",
                headers={"Authorization": pve_sim.admin_token["header"]},
                verify=pve_sim.cert_file,
                timeout=0.5,
            )
        assert time.monotonic() - started < 3
    finally:
        clear_sim_faults(pve_sim)


def test_reset_brings_back_the_seeded_state(admin: Api, pve_sim: SimInfo) -> None:
    reset_sim(pve_sim)
    before = sorted((g["vmid"], g["status"], g["name"]) for g in admin.get("/cluster/resources", type="vm"))
    vmid, node = next(
        (g["vmid"], g["node"])
        for g in admin.get("/cluster/resources", type="vm")
        if g["type"] == "lxc" and g["status"] == "running"
    )
    admin.request("POST", f"/nodes/{node}/lxc/{vmid}/status/stop")
    reset_sim(pve_sim)
    after = sorted((g["vmid"], g["status"], g["name"]) for g in admin.get("/cluster/resources", type="vm"))
    assert after == before
    assert admin.get("/cluster/tasks") == []


def test_the_requests_counter_counts_each_served_api_request_by_method_and_path(admin: Api,
                                                                             pve_sim: SimInfo) -> None:
    before = sim_requests(pve_sim)
    for _ in range(3):
        admin.get("/cluster/resources", type="vm")
    admin.request("GET", "/nodes/nosuchnode/status")
    after = sim_requests(pve_sim)
    assert after.get("GET /cluster/resources", 0) - before.get("GET /cluster/resources", 0) == 3
    assert after.get("GET /nodes/nosuchnode/status", 0) - before.get("GET /nodes/nosuchnode/status", 0) == 1


def test_the_certificate_served_is_the_one_whose_fingerprint_was_printed(pve_sim: SimInfo) -> None:
    import hashlib

    context = ssl.create_default_context(cafile=pve_sim.cert_file)
    with (
        socket.create_connection((pve_sim.host, pve_sim.api_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=pve_sim.host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    digest = hashlib.sha256(der).hexdigest().upper()
    assert pve_sim.fingerprint == ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
