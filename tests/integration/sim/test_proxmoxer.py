"""proxmoxer against the simulator, over HTTPS (token and password) and over SSH (pvesh) - issue 3 "Done when 2"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException

from tests.support.sim import SimInfo

VOLATILE = {
    "uptime",
    "cpu",
    "mem",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
    "disk",
    "pid",
    "wait",
    "loadavg",
    "memory",
    "swap",
    "rootfs",
    "time",
    "localtime",
    "used",
    "avail",
    "used_fraction",
}


def token_api(info: SimInfo, token: dict[str, str]) -> Any:
    return ProxmoxAPI(
        info.host,
        port=info.api_port,
        user=token["user"],
        token_name=token["token_id"],
        token_value=token["secret"],
        verify_ssl=info.cert_file,
        timeout=10,
    )


@pytest.fixture
def token(fresh_sim: SimInfo) -> Any:
    return token_api(fresh_sim, fresh_sim.admin_token)


def wait_task(api: Any, node: str, upid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.05)
    raise AssertionError(f"{upid} still running")


def first_guest(api: Any, kind: str, status: str) -> dict[str, Any]:
    return next(
        g
        for g in api.cluster.resources.get(type="vm")
        if g["type"] == kind and g["status"] == status and not g.get("template")
    )


def test_a_token_lists_nodes_and_guests(token: Any, fresh_sim: SimInfo) -> None:
    assert sorted(n["node"] for n in token.nodes.get()) == fresh_sim.nodes
    guests = token.cluster.resources.get(type="vm")
    assert {g["type"] for g in guests} == {"qemu", "lxc"}
    per_node = [
        g["vmid"] for n in fresh_sim.nodes for kind in ("qemu", "lxc") for g in getattr(token.nodes(n), kind).get()
    ]
    assert sorted(per_node) == sorted(g["vmid"] for g in guests)


def test_starting_a_vm_runs_a_task_to_ok_and_the_vm_ends_running(token: Any) -> None:
    guest = first_guest(token, "qemu", "stopped")
    node, vmid = guest["node"], guest["vmid"]
    upid = token.nodes(node).qemu(vmid).status.start.post()
    assert upid.startswith(f"UPID:{node}:") and f":qmstart:{vmid}:root@pam!pmcp:" in upid
    assert token.nodes(node).qemu(vmid).status.current.get()["status"] == "stopped"  # changes only when the task ends
    assert token.nodes(node).tasks(upid).log.get()  # readable while it runs
    status = wait_task(token, node, upid)
    assert (status["status"], status["exitstatus"]) == ("stopped", "OK")
    log = [line["t"] for line in token.nodes(node).tasks(upid).log.get()]
    assert log[-1] == "TASK OK"
    assert token.nodes(node).qemu(vmid).status.current.get()["status"] == "running"


def test_starting_a_running_vm_gives_a_failed_task_with_the_real_message(token: Any) -> None:
    guest = first_guest(token, "qemu", "running")
    node, vmid = guest["node"], guest["vmid"]
    upid = token.nodes(node).qemu(vmid).status.start.post()
    status = wait_task(token, node, upid)
    assert status["exitstatus"] == f"VM {vmid} already running"
    assert token.nodes(node).tasks(upid).log.get()[-1]["t"] == f"TASK ERROR: VM {vmid} already running"


def test_starting_a_running_container_is_refused_with_500(token: Any) -> None:
    guest = first_guest(token, "lxc", "stopped")
    node, vmid = guest["node"], guest["vmid"]
    wait_task(token, node, token.nodes(node).lxc(vmid).status.start.post())
    with pytest.raises(ResourceException) as caught:
        token.nodes(node).lxc(vmid).status.start.post()
    assert caught.value.status_code == 500
    assert caught.value.content == f"CT {vmid} already running"


def test_password_login_gets_a_ticket_and_can_change_state(fresh_sim: SimInfo) -> None:
    api: Any = ProxmoxAPI(
        fresh_sim.host,
        port=fresh_sim.api_port,
        user="root@pam",
        password=fresh_sim.root_password,
        verify_ssl=fresh_sim.cert_file,
        timeout=10,
    )
    assert len(api.nodes.get()) == len(fresh_sim.nodes)
    guest = first_guest(api, "qemu", "stopped")
    status = wait_task(api, guest["node"], api.nodes(guest["node"]).qemu(guest["vmid"]).status.start.post())
    assert status["exitstatus"] == "OK"
    assert status["user"] == "root@pam"


def test_a_wrong_password_is_an_authentication_error(pve_sim: SimInfo) -> None:
    with pytest.raises(AuthenticationError, match="code: 401"):
        ProxmoxAPI(
            pve_sim.host,
            port=pve_sim.api_port,
            user="root@pam",
            password="wrong",
            verify_ssl=pve_sim.cert_file,
            timeout=10,
        )


def test_a_bad_token_gets_401(pve_sim: SimInfo) -> None:
    api = token_api(pve_sim, {**pve_sim.admin_token, "secret": "00000000-0000-4000-8000-000000000000"})
    with pytest.raises(ResourceException) as caught:
        api.nodes.get()
    assert caught.value.status_code == 401


def test_a_token_without_power_management_gets_403(pve_sim: SimInfo) -> None:
    api = token_api(pve_sim, pve_sim.readonly_token)
    guest = next(g for g in api.cluster.resources.get(type="vm") if g["type"] == "qemu")
    with pytest.raises(ResourceException) as caught:
        api.nodes(guest["node"]).qemu(guest["vmid"]).status.start.post()
    assert caught.value.status_code == 403
    assert caught.value.content == f"Permission check failed (/vms/{guest['vmid']}, VM.PowerMgmt)"


def test_a_wrong_parameter_type_gets_400_with_errors(pve_sim: SimInfo) -> None:
    api = token_api(pve_sim, pve_sim.admin_token)
    guest = first_guest(api, "qemu", "running")
    with pytest.raises(ResourceException) as caught:
        api.nodes(guest["node"]).qemu(guest["vmid"]).status.shutdown.post(timeout="soon")
    assert caught.value.status_code == 400
    assert caught.value.content == "Parameter verification failed."
    assert caught.value.errors == {"timeout": "type check ('integer') failed - got 'soon'"}


@pytest.fixture
def ssh_api(fresh_sim: SimInfo) -> Iterator[Any]:
    api = ProxmoxAPI(
        fresh_sim.host,
        port=fresh_sim.ssh_port,
        user="root",
        private_key_file=fresh_sim.ssh_private_key,
        backend="ssh_paramiko",
        timeout=10,
    )
    try:
        yield api
    finally:
        api._backend.session.ssh_client.close()  # type: ignore[attr-defined]


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def test_pvesh_over_ssh_answers_like_the_https_api(ssh_api: Any, fresh_sim: SimInfo) -> None:
    https = token_api(fresh_sim, fresh_sim.admin_token)
    node = fresh_sim.nodes[0]
    vmid = https.nodes(node).qemu.get()[0]["vmid"]
    for path in (
        "version",
        "nodes",
        "cluster/status",
        "cluster/resources",
        f"nodes/{node}/qemu",
        f"nodes/{node}/lxc",
        f"nodes/{node}/storage/local/content",
        f"nodes/{node}/network",
        f"nodes/{node}/qemu/{vmid}/config",
        f"nodes/{node}/qemu/{vmid}/snapshot",
    ):
        assert stable(ssh_api(path).get()) == stable(https(path).get()), path


def test_pvesh_over_ssh_starts_a_vm_and_reports_errors_like_pvesh(ssh_api: Any, fresh_sim: SimInfo) -> None:
    https = token_api(fresh_sim, fresh_sim.admin_token)
    guest = next(
        g for g in https.nodes(fresh_sim.nodes[0]).qemu.get() if g["status"] == "stopped" and not g.get("template")
    )
    node, vmid = fresh_sim.nodes[0], guest["vmid"]
    upid = ssh_api.nodes(node).qemu(vmid).status.start.post()
    assert upid.startswith(f"UPID:{node}:") and ":qmstart:" in upid
    assert https.nodes(node).tasks(upid).status.get()["exitstatus"] == "OK"
    assert https.nodes(node).qemu(vmid).status.current.get()["status"] == "running"
    with pytest.raises(ResourceException) as caught:
        ssh_api.nodes(node).qemu(vmid).status.current.get(bogus=1)
    assert caught.value.status_code == 400
    with pytest.raises(ResourceException) as missing:
        ssh_api.nodes(node).qemu(999).status.current.get()
    assert "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist" in str(missing.value)
