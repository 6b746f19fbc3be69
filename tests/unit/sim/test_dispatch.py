"""API calls as the one dispatcher answers them, in process: state errors where Proxmox raises them, tasks, access,
faults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from proxmox_mcp_pve_sim.access import ROOT, Caller
from proxmox_mcp_pve_sim.api import Result
from proxmox_mcp_pve_sim.dispatch import dispatch
from proxmox_mcp_pve_sim.faults import FaultRule
from proxmox_mcp_pve_sim.model import Guest
from proxmox_mcp_pve_sim.sim import Sim, SimOptions

from tests.support.procs import wait_until_async

READONLY = Caller("auditor@pve", "readonly")
ADMIN_TOKEN = Caller("root@pam", "pmcp")


@pytest.fixture
def sim() -> Sim:
    return Sim(SimOptions(seed=7, nodes=3, guests=8, task_duration=0.01), fingerprint="AA:BB")


def pick(sim: Sim, kind: str, status: str) -> Guest:
    return next(
        g
        for g in sorted(sim.cluster.guests.values(), key=lambda g: g.vmid)
        if g.kind == kind and g.status == status and not g.template
    )


async def call(sim: Sim, method: str, path: str, caller: Caller = ROOT, **params: Any) -> Result:
    return await dispatch(sim, caller, method, path, params)


async def finish(sim: Sim, result: Result) -> dict[str, Any]:
    assert result.status == 200, (result.status, result.message, result.errors)
    task = sim.tasks.get(result.data)
    assert task is not None
    await asyncio.wait_for(task.done.wait(), 5)
    return task.status_entry()


def base(guest: Guest) -> str:
    return f"/nodes/{guest.node}/{guest.kind}/{guest.vmid}"


async def test_qemu_checks_running_state_before_reset_reboot_suspend_and_resume(sim: Sim) -> None:
    guest = pick(sim, "qemu", "stopped")
    for action in ("reset", "reboot", "suspend", "resume"):
        result = await call(sim, "POST", f"{base(guest)}/status/{action}")
        assert (result.status, result.message) == (500, f"VM {guest.vmid} not running"), action


async def test_stopping_a_stopped_vm_is_a_quiet_ok_task_but_a_container_is_refused(sim: Sim) -> None:
    vm = pick(sim, "qemu", "stopped")
    assert (await finish(sim, await call(sim, "POST", f"{base(vm)}/status/stop")))["exitstatus"] == "OK"
    ct = pick(sim, "lxc", "stopped")
    result = await call(sim, "POST", f"{base(ct)}/status/shutdown")
    assert (result.status, result.message) == (500, f"CT {ct.vmid} not running")


async def test_a_paused_vm_cannot_be_shut_down(sim: Sim) -> None:
    guest = pick(sim, "qemu", "running")
    await finish(sim, await call(sim, "POST", f"{base(guest)}/status/suspend"))
    status = (await call(sim, "GET", f"{base(guest)}/status/current")).data
    assert (status["status"], status["qmpstatus"]) == ("running", "paused")
    refused = await call(sim, "POST", f"{base(guest)}/status/shutdown")
    assert (refused.status, refused.message) == (500, "VM is paused - cannot shutdown")
    await finish(sim, await call(sim, "POST", f"{base(guest)}/status/resume"))
    assert (await call(sim, "GET", f"{base(guest)}/status/current")).data["qmpstatus"] == "running"


async def test_a_template_cannot_be_started(sim: Sim) -> None:
    template = next(g for g in sim.cluster.guests.values() if g.template)
    status = await finish(sim, await call(sim, "POST", f"{base(template)}/status/start"))
    assert status["exitstatus"] == "you can't start a vm if it's a template"


async def test_the_state_changes_only_when_the_task_finishes(sim: Sim) -> None:
    sim.tasks.duration = 0.2
    guest = pick(sim, "qemu", "stopped")
    result = await call(sim, "POST", f"{base(guest)}/status/start")
    task = sim.tasks.get(result.data)
    assert task is not None
    await wait_until_async(lambda: task.log, timeout=5, what="the task's first log line")  # it is working now
    assert guest.status == "stopped" and task.status == "running"
    await asyncio.wait_for(task.done.wait(), 5)
    assert guest.status == "running" and guest.uptime >= 0 and guest.pid


async def test_an_unknown_vmid_or_node_gets_the_node_messages(sim: Sim) -> None:
    result = await call(sim, "GET", "/nodes/pve1/qemu/999/config")
    assert (result.status, result.message) == (
        500,
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
    )
    result = await call(sim, "POST", "/nodes/pve1/lxc/999/status/start")
    assert result.message == "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
    other = next(g for g in sim.cluster.guests.values() if g.node != "pve1" and g.kind == "qemu")
    assert (await call(sim, "GET", f"/nodes/pve1/qemu/{other.vmid}/config")).status == 500
    assert str((await call(sim, "GET", "/nodes/pve7/status")).message).startswith("hostname lookup 'pve7' failed")


async def test_a_vm_is_created_configured_and_destroyed_with_proxmoxs_checks(sim: Sim) -> None:
    created = await call(
        sim,
        "POST",
        "/nodes/pve2/qemu",
        vmid="500",
        name="new-vm",
        memory="1024",
        scsi0="local-lvm:8",
        net0="virtio,bridge=vmbr0",
    )
    assert sim.cluster.guests[500].lock == "create"
    await finish(sim, created)
    config = (await call(sim, "GET", "/nodes/pve2/qemu/500/config")).data
    assert config["name"] == "new-vm" and config["memory"] == "1024" and config["cores"] == 1
    assert config["scsi0"] == "local-lvm:vm-500-disk-0,size=8G" and config["net0"].startswith("virtio=BC:24:11:")
    duplicate = await call(sim, "POST", "/nodes/pve1/qemu", vmid="500")
    assert duplicate.message == "unable to create VM 500 - VM 500 already exists on node 'pve2'"
    stale = await call(sim, "PUT", "/nodes/pve2/qemu/500/config", digest="0" * 40, name="x")
    assert stale.message == "detected modified configuration - file changed by other user? Try again."
    assert (
        await call(sim, "PUT", "/nodes/pve2/qemu/500/config", digest=config["digest"], name="renamed", delete="net0")
    ).status == 200
    assert sim.cluster.guests[500].config["name"] == "renamed" and "net0" not in sim.cluster.guests[500].config
    await finish(sim, await call(sim, "POST", "/nodes/pve2/qemu/500/config", cores="2"))
    await finish(sim, await call(sim, "POST", "/nodes/pve2/qemu/500/status/start"))
    running = await call(sim, "DELETE", "/nodes/pve2/qemu/500")
    assert (running.status, running.message) == (500, "VM 500 is running - destroy failed")
    await finish(sim, await call(sim, "POST", "/nodes/pve2/qemu/500/status/stop"))
    await finish(sim, await call(sim, "DELETE", "/nodes/pve2/qemu/500"))
    assert 500 not in sim.cluster.guests


async def test_a_container_is_created_and_destroyed_with_proxmoxs_checks(sim: Sim) -> None:
    missing = await call(sim, "POST", "/nodes/pve1/lxc", vmid="600", ostemplate="local:vztmpl/none.tar.zst")
    assert missing.message == "volume 'local:vztmpl/none.tar.zst' does not exist"
    await finish(
        sim,
        await call(
            sim,
            "POST",
            "/nodes/pve1/lxc",
            vmid="600",
            hostname="ct600",
            start="1",
            ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        ),
    )
    assert sim.cluster.guests[600].running
    refused = await call(sim, "DELETE", "/nodes/pve1/lxc/600")
    assert refused.message == "unable to destroy CT 600 - container is running"
    await finish(sim, await call(sim, "DELETE", "/nodes/pve1/lxc/600", force="1"))


async def test_snapshots_can_be_taken_listed_rolled_back_and_deleted(sim: Sim) -> None:
    guest = pick(sim, "qemu", "running")
    await finish(sim, await call(sim, "POST", f"{base(guest)}/snapshot", snapname="s1"))
    guest.config["name"] = "changed"
    duplicate = await call(sim, "POST", f"{base(guest)}/snapshot", snapname="s1")
    assert duplicate.message == "snapshot name 's1' already used"
    names = [s["name"] for s in (await call(sim, "GET", f"{base(guest)}/snapshot")).data]
    assert names[-2:] == ["s1", "current"]
    rolled = await finish(sim, await call(sim, "POST", f"{base(guest)}/snapshot/s1/rollback"))
    assert rolled["exitstatus"] == "OK" and guest.config["name"] != "changed" and guest.status == "stopped"
    gone = await finish(sim, await call(sim, "DELETE", f"{base(guest)}/snapshot/nope"))
    assert gone["exitstatus"] == "snapshot 'nope' does not exist"
    await finish(sim, await call(sim, "DELETE", f"{base(guest)}/snapshot/s1"))
    assert "s1" not in [s.name for s in guest.snapshots]
    assert (await call(sim, "GET", f"{base(guest)}/snapshot/s1/config")).message == "snapshot 's1' does not exist"


async def test_the_guest_agent_runs_commands_in_the_emulated_guest(sim: Sim) -> None:
    guest = next(g for g in sim.cluster.guests.values() if g.kind == "qemu" and g.running and g.agent_enabled)
    started = await call(sim, "POST", f"{base(guest)}/agent/exec", command=["sh", "-c", "hostname; nosuch"])
    pid = started.data["pid"]
    status: dict[str, Any] = {}
    for _ in range(100):
        status = (await call(sim, "GET", f"{base(guest)}/agent/exec-status", pid=str(pid))).data
        if status["exited"]:
            break
        await asyncio.sleep(0.01)
    assert status == {
        "exited": 1,
        "exitcode": 127,
        "out-data": f"{guest.name}\n",
        "err-data": "bash: nosuch: command not found\n",
    }
    unknown = await call(sim, "GET", f"{base(guest)}/agent/exec-status", pid="4242")
    assert unknown.status == 500 and "4242" in (unknown.message or "")


async def test_the_guest_agent_refuses_like_qemu_server(sim: Sim) -> None:
    stopped = next(g for g in sim.cluster.guests.values() if g.kind == "qemu" and not g.running and g.agent_enabled)
    assert (
        await call(sim, "POST", f"{base(stopped)}/agent/exec", command="uptime")
    ).message == f"VM {stopped.vmid} is not running"
    stopped.config["agent"] = "0"
    assert (
        await call(sim, "POST", f"{base(stopped)}/agent/exec", command="uptime")
    ).message == "No QEMU guest agent configured"
    await finish(sim, await call(sim, "POST", "/nodes/pve1/qemu", vmid="700", agent="1", start="1"))
    fresh = await call(sim, "POST", "/nodes/pve1/qemu/700/agent/exec", command="uptime")
    assert (fresh.status, fresh.message) == (500, "QEMU guest agent is not running")


async def test_the_read_only_token_reads_everything_and_changes_nothing(sim: Sim) -> None:
    guest = pick(sim, "qemu", "stopped")
    assert (await call(sim, "GET", "/cluster/resources", READONLY)).data
    assert (await call(sim, "GET", f"{base(guest)}/config", READONLY)).status == 200
    for method, path, params in [
        ("POST", f"{base(guest)}/status/start", {}),
        ("POST", f"{base(guest)}/snapshot", {"snapname": "x"}),
        ("PUT", f"{base(guest)}/config", {"name": "x"}),
        ("DELETE", base(guest), {}),
    ]:
        result = await dispatch(sim, READONLY, method, path, params)
        assert result.status == 403 and (result.message or "").startswith(
            f"Permission check failed (/vms/{guest.vmid}, "
        )
    assert (
        await call(sim, "POST", "/nodes/pve1/execute", ADMIN_TOKEN, commands="[]")
    ).message == "Permission check failed (user != root@pam)"


async def test_task_lists_filter_and_page(sim: Sim) -> None:
    guest = pick(sim, "qemu", "stopped")
    for _ in range(3):
        await finish(sim, await call(sim, "POST", f"{base(guest)}/status/stop"))
    node = guest.node
    listed = await call(sim, "GET", f"/nodes/{node}/tasks", vmid=str(guest.vmid))
    assert listed.total == 3 and len(listed.data) == 3
    assert (await call(sim, "GET", f"/nodes/{node}/tasks", limit="1", start="1")).data[0]["upid"] == listed.data[1][
        "upid"
    ]
    assert (await call(sim, "GET", f"/nodes/{node}/tasks", source="active")).data == []
    assert len((await call(sim, "GET", "/cluster/tasks")).data) == 3
    upid = listed.data[0]["upid"]
    log = await call(sim, "GET", f"/nodes/{node}/tasks/{upid}/log", start="0", limit="1")
    assert log.data == [{"n": 1, "t": "TASK OK"}] and log.total == 1
    assert (await call(sim, "GET", f"/nodes/{node}/tasks/UPID:garbage/status")).status == 400
    unknown = f"UPID:{node}:00000001:00000002:00000003:qmstart:100:root@pam:"
    assert (await call(sim, "GET", f"/nodes/{node}/tasks/{unknown}/status")).message == "no such task"


async def test_execute_runs_a_batch_of_api_calls_as_root(sim: Sim) -> None:
    commands = json.dumps(
        [
            {"method": "GET", "path": "/version"},
            {"path": "/nodes/pve1/qemu/999/config"},
            {"method": "GET", "path": "/cluster/resources", "args": {"type": "bogus"}},
            "junk",
        ]
    )
    result = (await call(sim, "POST", "/nodes/pve1/execute", commands=commands)).data
    assert [r["status"] for r in result] == [200, 500, 400, 400]
    assert result[0]["data"]["release"] == "9.1"
    assert (await call(sim, "POST", "/nodes/pve1/execute", commands="not json")).status == 400


async def test_tickets_and_csrf_tokens_are_bound_to_the_user_and_the_secret(sim: Sim) -> None:
    access = sim.access
    ticket, csrf = access.issue_ticket("root@pam")
    assert access.verify_ticket(ticket) == "root@pam" and access.verify_csrf(csrf, "root@pam")
    assert not access.verify_csrf(csrf, "auditor@pve") and not access.verify_csrf(None, "root@pam")
    assert access.verify_ticket(ticket.replace("root@pam", "auditor@pve")) is None
    old, _ = access.issue_ticket("root@pam", now=time.time() - 7300)
    assert access.verify_ticket(old) is None
    assert access.login("root", access.root_password, "pam") == "root@pam"
    assert access.login("root@pam", ticket) == "root@pam"
    assert Sim(SimOptions()).access.verify_ticket(ticket) is None  # another start, another secret
    login = await call(sim, "POST", "/access/ticket", username="root@pam", password="nope")
    assert (login.status, login.message) == (401, "authentication failure")


async def test_faults_delay_and_fail_matching_calls(sim: Sim) -> None:
    sim.faults.replace(
        [
            FaultRule.from_dict({"path": "^/version$", "error_rate": 1, "status": 502}),
            FaultRule.from_dict({"path": "^/nodes$", "method": "GET", "latency_ms": 50}),
        ]
    )
    assert (await call(sim, "GET", "/version")).status == 502
    started = time.monotonic()
    assert (await call(sim, "GET", "/nodes")).status == 200
    assert time.monotonic() - started >= 0.05
    sim.faults.clear()
    assert (await call(sim, "GET", "/version")).status == 200


async def test_reset_returns_to_the_seeded_cluster(sim: Sim) -> None:
    before = {g.vmid: (g.name, g.status) for g in sim.cluster.guests.values()}
    await finish(sim, await call(sim, "POST", f"{base(pick(sim, 'qemu', 'stopped'))}/status/start"))
    sim.reset()
    assert {g.vmid: (g.name, g.status) for g in sim.cluster.guests.values()} == before
    assert sim.tasks.tasks == {}
