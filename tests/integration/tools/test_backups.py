"""Backups through the official MCP client against the simulator (issue 15, Done-when 1): list (shared storage once,
Proxmox Backup Server included), back up now with progress to the task's end, restore with confirmation, the
scheduled jobs and when each guest was last backed up; bad arguments and missing storages give clear errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from mcp.shared.exceptions import MCPError
from proxmox_mcp_contracts.envelope import Caller, RequestEnvelope, Scope, decode_error
from proxmox_mcp_contracts.subjects import ERROR_CODE_HEADER, ERROR_HEADER, ApiOp, api_subject

from tests.integration.tools.helpers import ToolsStack, call_error, call_ok
from tests.support.mcp_client import SimClient, http_client
from tests.support.sim import reset_sim, sim_storage_full


@pytest.fixture(autouse=True)
def fresh_clusters(tools_stack: ToolsStack) -> Iterator[None]:
    """Backups and restores change the simulated clusters: each test leaves them seeded again."""
    yield
    reset_sim(tools_stack.alpha)
    reset_sim(tools_stack.beta)


def truth(sim: SimClient) -> dict[str, dict[str, Any]]:
    """Every backup volume the simulator holds, by volid (a shared storage's seen from each node alike)."""
    found: dict[str, dict[str, Any]] = {}
    for node in (n["node"] for n in sim.get("/nodes")):
        for storage in sim.get(f"/nodes/{node}/storage", content="backup"):
            for item in sim.get(f"/nodes/{node}/storage/{storage['storage']}/content", content="backup"):
                found[item["volid"]] = {**item, "storage": storage["storage"], "node": node,
                                        "shared": bool(storage.get("shared"))}
    return found


async def test_list_backups_reads_every_backup_storage_and_a_shared_one_once(tools_stack: ToolsStack) -> None:
    with tools_stack.sim("alpha") as sim:
        expected = truth(sim)
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        listed = await call_ok(client, "list_backups", {})
        volids = [b["volid"] for b in listed["backups"]]
        assert len(volids) == len(set(volids)) == listed["count"] == listed["total"]
        assert set(volids) == set(expected)
        assert {"local", "nfs-backup", "pbs-store"} <= set(listed["storages"])
        by_volid = {b["volid"]: b for b in listed["backups"]}
        pbs = [b for b in listed["backups"] if b["storage"] == "pbs-store"]
        assert pbs and all(b["storage_type"] == "pbs" and b["shared"] and b["node"] is None for b in pbs)
        assert all(b["verified"] == "ok" and b["format"] in ("pbs-vm", "pbs-ct") for b in pbs)
        local = [b for b in listed["backups"] if b["storage"] == "local"]
        assert local and all(b["node"] == expected[b["volid"]]["node"] and not b["shared"] for b in local)
        assert [b["ctime"] for b in listed["backups"]] == sorted((b["ctime"] for b in listed["backups"]),
                                                                 reverse=True)
        vmid = pbs[0]["vmid"]
        one = await call_ok(client, "list_backups", {"vmid": vmid})
        assert one["backups"] and {b["vmid"] for b in one["backups"]} == {vmid}
        assert {b["volid"] for b in one["backups"]} == {v for v, b in by_volid.items() if b["vmid"] == vmid}
        only = await call_ok(client, "list_backups", {"storage": "pbs-store", "limit": 1})
        assert only["storages"] == ["pbs-store"] and only["count"] == 1 and only["total"] == len(pbs)
        code, text = await call_error(client, "list_backups", {"storage": "nope"})
        assert code == "not_found" and "'nope' does not exist" in text and "pbs-store" in text
        code, text = await call_error(client, "list_backups", {"storage": "local-lvm"})
        assert code == "invalid_argument" and "holds no backups" in text
        assert (await call_error(client, "list_backups", {"vmid": 5}))[0] == "invalid_argument"
        assert (await call_error(client, "list_backups", {"storage": "bad storage!"}))[0] == "invalid_argument"
        assert (await call_error(client, "list_backups", {"node": "pve9"}))[0] == "not_found"


async def test_back_up_now_reports_progress_to_the_task_end_and_the_backup_is_listed(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("beta", "qemu", "running")  # beta's tasks take long enough for progress
    seen: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        before = await call_ok(client, "list_backups", {"vmid": vm["vmid"], "storage": "pbs-store",
                                                        "cluster": "beta"})
        done = await call_ok(client, "backup_guest", {"vmid": vm["vmid"], "storage": "pbs-store", "wait": True,
                                                      "notes": "pmcp {{guestname}}", "cluster": "beta"},
                             progress_callback=on_progress)
        assert done["action"] == "backup_guest" and (done["mode"], done["remove"]) == ("snapshot", False)
        assert done["waited"] and done["task"]["ok"] and done["task"]["type"] == "vzdump"
        assert any("INFO: Backup job finished successfully" in line for line in done["task"]["log_tail"])
        assert any("%" in m for m in seen if m.startswith("task running")), seen
        assert seen[-1] == "task finished: OK"
        after = await call_ok(client, "list_backups", {"vmid": vm["vmid"], "storage": "pbs-store",
                                                       "cluster": "beta"})
        assert after["total"] == before["total"] + 1
        newest = after["backups"][0]
        assert newest["notes"] == f"pmcp {vm['name']}" and newest["ctime"] >= int(time.time()) - 60
    assert tools_stack.guest_status("beta", vm["vmid"]) == "running"  # snapshot mode: no downtime


async def test_operate_scope_may_only_back_up_without_downtime_and_without_pruning(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    operator = tools_stack.token(Scope.OPERATE)
    async with http_client(tools_stack.gateway.url, operator) as client:
        for extra in ({"mode": "stop"}, {"mode": "suspend"}, {"remove": True}, {"prune_backups": "keep-last=1"}):
            code, text = await call_error(client, "backup_guest", {"vmid": vm["vmid"], **extra, "confirm": True})
            assert code == "permission_denied" and "admin" in text, extra
        started = await call_ok(client, "backup_guest", {"vmid": vm["vmid"], "storage": "local"})
        assert started["upid"].startswith("UPID:") and started["task"] is None and started["remove"] is False
        assert (await call_ok(client, "wait_task", {"upid": started["upid"]}))["ok"]  # its lock is gone again
        # A 2026-era call names its tool in Mcp-Name, so the gateway refuses it before reading the body.
        with pytest.raises(MCPError) as refused:
            await client.call_tool("restore_backup", {"volid": "local:backup/x.vma.zst", "confirm": True})
        assert isinstance(refused.value.error.data, dict)
        assert refused.value.error.data["code"] == "permission_denied"
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as admin:
        code, text = await call_error(admin, "backup_guest", {"vmid": vm["vmid"], "mode": "stop"})
        assert code == "policy_denied" and "confirm" in text
        pruned = await call_ok(admin, "backup_guest", {"vmid": vm["vmid"], "storage": "local", "remove": True,
                                                       "prune_backups": "keep-last=1", "wait": True,
                                                       "confirm": True})
        assert pruned["task"]["ok"] and any("pruned" in line for line in pruned["task"]["log_tail"])
        left = await call_ok(admin, "list_backups", {"vmid": vm["vmid"], "storage": "local"})
        assert left["total"] == 1


async def test_backup_arguments_and_storages_are_checked_before_proxmox_runs_anything(
        tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        code, text = await call_error(client, "backup_guest", {"vmid": vm["vmid"], "storage": "nope"})
        assert code == "not_found" and "'nope' does not exist on node" in text and "local" in text
        code, text = await call_error(client, "backup_guest", {"vmid": vm["vmid"], "storage": "local-lvm"})
        assert code == "invalid_argument" and "does not hold backups" in text and "pbs-store" in text
        for bad in ({"mode": "fast"}, {"compress": "bzip9"}, {"prune_backups": "keep-some=3"}, {"vmid": 99},
                    {"notes": "two\nlines"}, {"storage": "-x"}):
            code, _ = await call_error(client, "backup_guest", {"vmid": vm["vmid"], **bad})
            assert code == "invalid_argument", bad
        assert (await call_error(client, "backup_guest", {"vmid": vm["vmid"], "protected": True}))[0] == \
            "invalid_argument"
        assert (await call_error(client, "backup_guest", {"vmid": 4242}))[0] == "not_found"
        assert (await call_error(client, "restore_backup", {"volid": "no-colon", "confirm": True}))[0] == \
            "invalid_argument"
    assert not [t for t in tools_stack.records("backup_guest", event="tool_call") if t["result"] == "ok"
                and t["arguments"].get("storage") in ("nope", "local-lvm")]


async def test_a_backup_to_a_full_storage_ends_as_a_failed_task(tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "lxc", "running")
    sim_storage_full(tools_stack.alpha, "nfs-backup", full=True)
    try:
        async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
            done = await call_ok(client, "backup_guest", {"vmid": vm["vmid"], "storage": "nfs-backup",
                                                          "wait": True})
            assert done["task"]["ok"] is False and done["task"]["exitstatus"] == "job errors"
            assert any("No space left on device" in line for line in done["task"]["log_tail"])
            status = await client.call_tool("task_status", {"upid": done["upid"]})
            assert "FAILED" in status.content[0].text  # type: ignore[union-attr]
    finally:
        sim_storage_full(tools_stack.alpha, "nfs-backup", full=False)


async def test_restore_needs_confirmation_a_stopped_guest_and_overwrites_it(tools_stack: ToolsStack) -> None:
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        backups = (await call_ok(client, "list_backups", {"storage": "local"}))["backups"]
        with tools_stack.sim("alpha") as sim:
            status = {g["vmid"]: g for g in sim.guests()}
        running = next(b for b in backups if status[b["vmid"]]["status"] == "running" and b["type"] == "qemu")
        code, text = await call_error(client, "restore_backup", {"volid": running["volid"]})
        assert code == "policy_denied" and "confirm" in text
        code, text = await call_error(client, "restore_backup", {"volid": running["volid"], "confirm": True})
        assert code == "conflict" and "stop it" in text
        await call_ok(client, "vm_action", {"vmid": running["vmid"], "action": "stop", "wait": True,
                                            "confirm": True})
        done = await call_ok(client, "restore_backup", {"volid": running["volid"], "wait": True, "confirm": True})
        assert done["overwrote"] is True and done["task"]["ok"] and done["task"]["type"] == "qmrestore"
        assert (done["vmid"], done["node"], done["type"]) == (running["vmid"], running["node"], "qemu")
        fresh = await call_ok(client, "restore_backup", {"volid": running["volid"], "vmid": 950, "wait": True,
                                                         "confirm": True})
        assert fresh["overwrote"] is False and fresh["task"]["ok"]
        created = await call_ok(client, "vm_status", {"vmid": 950})
        assert created["type"] == "qemu" and created["status"] == "stopped"
        container = next(b for b in backups if b["type"] == "lxc")
        code, text = await call_error(client, "restore_backup", {"volid": container["volid"], "vmid": 950,
                                                                 "confirm": True})
        assert code == "invalid_argument" and "container" in text
        code, text = await call_error(client, "restore_backup", {"volid": "local:backup/vzdump-qemu-1-x.vma.zst",
                                                                 "confirm": True})
        assert code == "not_found" and "no backup" in text
        code, text = await call_error(client, "restore_backup", {"volid": "nope:backup/x.vma.zst", "confirm": True})
        assert code == "not_found" and "'nope' does not exist" in text
    confirmed = [r for r in tools_stack.records("restore_backup", event="tool_call") if r["result"] == "ok"]
    assert confirmed and all(r["decision"]["confirmation"] == "argument" for r in confirmed)


async def test_backup_jobs_give_the_next_run_and_the_guests_no_job_covers(tools_stack: ToolsStack) -> None:
    with tools_stack.sim("alpha") as sim:
        raw = {job["id"]: job for job in sim.get("/cluster/backup")}
        uncovered = {g["vmid"] for g in sim.get("/cluster/backup-info/not-backed-up")}
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        result = await call_ok(client, "backup_jobs", {})
    jobs = {job["id"]: job for job in result["jobs"]}
    assert set(jobs) == set(raw)
    enabled = [job for job in result["jobs"] if job["enabled"]]
    assert enabled and all(job["next_run_source"] == "proxmox" and job["next_run"] > time.time() for job in enabled)
    assert [job["next_run"] for job in enabled] == sorted(job["next_run"] for job in enabled)
    assert not result["jobs"][-1]["enabled"] and result["jobs"][-1]["next_run"] is None  # disabled jobs last
    weekly = next(job for job in result["jobs"] if job["schedule"] == "sat 02:00")
    when = time.gmtime(weekly["next_run"])
    assert (when.tm_wday, when.tm_hour, when.tm_min) == (5, 2, 0) and weekly["storage"] == "pbs-store"
    assert weekly["selection"] == "vmids" and weekly["vmids"] and weekly["prune_backups"] == "keep-weekly=4"
    assert {g["vmid"] for g in result["not_covered"]} == uncovered


async def test_last_backups_give_each_guests_newest_backup_and_those_never_backed_up(tools_stack: ToolsStack) -> None:
    with tools_stack.sim("alpha") as sim:
        expected = truth(sim)
        every = {g["vmid"] for g in sim.guests()}
    newest: dict[int, int] = {}
    for item in expected.values():
        newest[item["vmid"]] = max(newest.get(item["vmid"], 0), item["ctime"])
    async with http_client(tools_stack.gateway.url, tools_stack.gateway.token) as client:
        result = await call_ok(client, "last_backups", {})
        assert {g["vmid"] for g in result["guests"]} == every
        assert {g["vmid"]: g["last_backup"] for g in result["guests"] if g["last_backup"]} == newest
        assert set(result["never_backed_up"]) == every - set(newest) and result["never_backed_up"]
        one = next(g for g in result["guests"] if g["last_backup"])
        assert one["age_seconds"] == result["checked_at"] - one["last_backup"] and one["volid"] in expected
        single = await call_ok(client, "last_backups", {"vmid": one["vmid"]})
        assert [g["vmid"] for g in single["guests"]] == [one["vmid"]]
        assert (await call_error(client, "last_backups", {"vmid": 4242}))[0] == "not_found"
        text = (await client.call_tool("last_backups", {})).content[0].text  # type: ignore[union-attr]
        assert "never backed up" in text


async def test_the_api_worker_refuses_a_downtime_backup_sent_straight_to_nats_at_operate_scope(
        tools_stack: ToolsStack) -> None:
    vm = tools_stack.first_guest("alpha", "qemu", "running")
    nc = await nats.connect(tools_stack.nats_url)
    try:
        replies = []
        for scope, mode in ((Scope.OPERATE, "stop"), (Scope.ADMIN, "stop"), (Scope.OPERATE, "snapshot")):
            envelope = RequestEnvelope(op=ApiOp.BACKUP_START.value, cluster="alpha", deadline=time.time() + 10,
                                       args={"vmid": vm["vmid"], "mode": mode, "storage": "local"},
                                       caller=Caller(token_id="direct", scope=scope))
            msg = await nc.request(api_subject("alpha", ApiOp.BACKUP_START), envelope.model_dump_json().encode(),
                                   timeout=10)
            headers = msg.headers or {}
            replies.append((headers.get(ERROR_CODE_HEADER), headers.get(ERROR_HEADER), msg.data))
    finally:
        await nc.close()
    refused, allowed_admin, allowed_operate = replies
    info = decode_error(refused[0], refused[1], refused[2])
    assert info.code.value == "permission_denied" and "admin" in info.message
    assert allowed_admin[0] is None and allowed_operate[0] is None  # both started a task
