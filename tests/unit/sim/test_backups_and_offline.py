"""The simulator's backups (jobs, vzdump lifecycle, pruning, restore) and an offline node, in process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from proxmox_mcp_pve_sim.access import ROOT, Caller
from proxmox_mcp_pve_sim.api import Result
from proxmox_mcp_pve_sim.dispatch import dispatch
from proxmox_mcp_pve_sim.model import Guest
from proxmox_mcp_pve_sim.sim import Sim, SimOptions

READONLY = Caller("auditor@pve", "readonly")


@pytest.fixture
def sim() -> Sim:
    return Sim(SimOptions(seed=7, nodes=3, guests=8, task_duration=0.01), fingerprint="AA:BB")


async def call(sim: Sim, method: str, path: str, caller: Caller = ROOT, **params: Any) -> Result:
    return await dispatch(sim, caller, method, path, params)


async def finish(sim: Sim, result: Result) -> tuple[dict[str, Any], list[str]]:
    assert result.status == 200, (result.status, result.message, result.errors)
    task = sim.tasks.get(result.data)
    assert task is not None
    await asyncio.wait_for(task.done.wait(), 5)
    return task.status_entry(), list(task.log)


def guest(sim: Sim, kind: str, status: str) -> Guest:
    return next(g for g in sorted(sim.cluster.guests.values(), key=lambda g: g.vmid)
                if g.kind == kind and g.status == status and not g.template)


async def content(sim: Sim, node: str, storage: str, vmid: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"content": "backup"}
    if vmid is not None:
        params["vmid"] = vmid
    result = await call(sim, "GET", f"/nodes/{node}/storage/{storage}/content", **params)
    assert result.status == 200, result.message
    return result.data


async def test_shared_storage_is_the_same_on_every_node_and_pbs_backups_look_like_pbs(sim: Sim) -> None:
    listings = [await content(sim, node, "pbs-store") for node in sim.cluster.nodes]
    assert listings[0] and all(listing == listings[0] for listing in listings)
    entry = listings[0][0]
    assert entry["format"] in ("pbs-vm", "pbs-ct") and entry["volid"].startswith("pbs-store:backup/")
    assert entry["verification"]["state"] == "ok" and entry["subtype"] in ("qemu", "lxc")
    storages = {s["storage"]: s for s in (await call(sim, "GET", "/nodes/pve1/storage")).data}
    assert (storages["pbs-store"]["type"], storages["pbs-store"]["shared"]) == ("pbs", 1)
    assert (storages["nfs-backup"]["type"], storages["nfs-backup"]["shared"]) == ("nfs", 1)
    config = {s["storage"]: s for s in (await call(sim, "GET", "/storage")).data}
    assert config["pbs-store"]["datastore"] == "store1" and config["nfs-backup"]["prune-backups"] == "keep-last=3"


async def test_backup_jobs_carry_their_next_run_and_the_uncovered_guests_are_listed(sim: Sim) -> None:
    jobs = (await call(sim, "GET", "/cluster/backup")).data
    enabled = [j for j in jobs if j["enabled"]]
    assert enabled and all(j["next-run"] > time.time() for j in enabled)
    assert all("next-run" not in j for j in jobs if not j["enabled"])
    weekly = next(j for j in jobs if j["schedule"] == "sat 02:00")
    assert time.gmtime(weekly["next-run"]).tm_wday == 5 and time.gmtime(weekly["next-run"]).tm_hour == 2
    assert (await call(sim, "GET", f"/cluster/backup/{weekly['id']}")).data["id"] == weekly["id"]
    assert (await call(sim, "GET", "/cluster/backup/nope")).status == 500
    uncovered = {g["vmid"] for g in (await call(sim, "GET", "/cluster/backup-info/not-backed-up")).data}
    covered = {int(v) for j in jobs for v in j.get("vmid", "").split(",") if v}
    assert uncovered and not uncovered & covered


async def test_vzdump_runs_as_a_task_with_progress_and_adds_the_archive(sim: Sim) -> None:
    vm = guest(sim, "qemu", "running")
    before = await content(sim, vm.node, "local", vm.vmid)
    status, log = await finish(sim, await call(sim, "POST", f"/nodes/{vm.node}/vzdump", vmid=str(vm.vmid),
                                               storage="local", mode="snapshot", remove=0, compress="zstd"))
    assert status["exitstatus"] == "OK" and status["type"] == "vzdump" and status["id"] == str(vm.vmid)
    assert any("100% (" in line for line in log) and any("50" in line or "51%" in line for line in log)
    assert log[-2] == "INFO: Backup job finished successfully" and log[-1] == "TASK OK"
    after = await content(sim, vm.node, "local", vm.vmid)
    assert len(after) == len(before) + 1 and vm.running and vm.lock is None


async def test_vzdump_prunes_unless_remove_is_zero(sim: Sim) -> None:
    nfs = sim.cluster.nodes["pve1"].storages["nfs-backup"]
    vmid = next(v.vmid for v in nfs.volumes)
    assert vmid is not None
    node = sim.cluster.guests[vmid].node
    _, log = await finish(sim, await call(sim, "POST", f"/nodes/{node}/vzdump", vmid=str(vmid),
                                          storage="nfs-backup", remove=0))
    assert len(await content(sim, node, "nfs-backup", vmid)) == 4 and not any("prune" in line for line in log)
    _, log = await finish(sim, await call(sim, "POST", f"/nodes/{node}/vzdump", vmid=str(vmid),
                                          storage="nfs-backup"))
    assert len(await content(sim, node, "nfs-backup", vmid)) == 3  # keep-last=3 of the storage
    assert "INFO: pruned 2 backup(s) not covered by keep-retention policy" in log


async def test_vzdump_fails_like_vzdump_on_a_full_storage_and_in_stop_mode_restarts_the_guest(sim: Sim) -> None:
    vm = guest(sim, "qemu", "running")
    sim.cluster.nodes[vm.node].storages["local"].full = True
    status, log = await finish(sim, await call(sim, "POST", f"/nodes/{vm.node}/vzdump", vmid=str(vm.vmid),
                                               storage="local", mode="stop", remove=0))
    assert status["exitstatus"] == "job errors"
    assert any(line.startswith(f"ERROR: Backup of VM {vm.vmid} failed - ") and "No space left" in line
               for line in log)
    assert "INFO: stopping virtual guest" in log and vm.running and vm.lock is None


async def test_vzdump_refuses_unknown_storage_storage_without_backups_and_a_foreign_guest(sim: Sim) -> None:
    vm = guest(sim, "qemu", "running")
    other = next(n for n in sim.cluster.nodes if n != vm.node)
    path = f"/nodes/{vm.node}/vzdump"
    assert (await call(sim, "POST", path, vmid=str(vm.vmid), storage="nope")).message == \
        "storage 'nope' does not exist"
    assert "does not support backups" in str((await call(sim, "POST", path, vmid=str(vm.vmid),
                                                          storage="local-lvm")).message)
    assert "unable to find VM" in str((await call(sim, "POST", f"/nodes/{other}/vzdump", vmid=str(vm.vmid))).message)
    assert (await call(sim, "POST", path, READONLY, vmid=str(vm.vmid))).status == 403
    assert (await call(sim, "POST", path, vmid=str(vm.vmid), mode="fast")).status == 400


async def test_restore_overwrites_a_stopped_guest_only_with_force_and_never_a_running_one(sim: Sim) -> None:
    volid = next(v for v in sim.cluster.nodes["pve1"].storages["local"].volumes
                 if v.content == "backup" and v.vmid is not None).volid
    target = sim.cluster.guests[int(volid.split("-")[2])]
    archive_path = f"/nodes/{target.node}/{target.kind}"
    key = "archive" if target.kind == "qemu" else "ostemplate"
    extra: dict[str, Any] = {} if target.kind == "qemu" else {"restore": 1}
    refused = await call(sim, "POST", archive_path, vmid=target.vmid, **{key: volid}, **extra)
    assert refused.status == 500 and "already exists" in str(refused.message)
    target.status = "running"
    running = await call(sim, "POST", archive_path, vmid=target.vmid, force=1, **{key: volid}, **extra)
    assert "is running" in str(running.message)
    target.status = "stopped"
    target.config["memory"] = "99"
    status, log = await finish(sim, await call(sim, "POST", archive_path, vmid=target.vmid, force=1,
                                               **{key: volid}, **extra))
    assert status["exitstatus"] == "OK" and status["type"] in ("qmrestore", "vzrestore")
    assert target.config["memory"] != "99" and any(line.startswith("progress 100%") for line in log)
    fresh = 900
    status, _ = await finish(sim, await call(sim, "POST", archive_path, vmid=fresh, **{key: volid}, **extra))
    assert status["exitstatus"] == "OK" and sim.cluster.guests[fresh].kind == target.kind
    missing = await call(sim, "POST", archive_path, vmid=901, **{key: "local:backup/none.vma.zst"}, **extra)
    assert missing.message == "volume 'local:backup/none.vma.zst' does not exist"


async def test_an_offline_node_shows_like_a_real_cluster_and_its_proxied_calls_fail(sim: Sim) -> None:
    sim.set_node_online("pve2", False)
    nodes = {n["node"]: n for n in (await call(sim, "GET", "/nodes")).data}
    assert nodes["pve2"]["status"] == "offline" and "mem" not in nodes["pve2"] and nodes["pve1"]["status"] == "online"
    resources = (await call(sim, "GET", "/cluster/resources")).data
    on_pve2 = [r for r in resources if r.get("node") == "pve2" and r["type"] in ("qemu", "lxc")]
    assert on_pve2 and all(r["status"] == "unknown" and "mem" not in r for r in on_pve2)
    status = {e["name"]: e for e in (await call(sim, "GET", "/cluster/status")).data if e["type"] == "node"}
    assert status["pve2"]["online"] == 0 and status["pve1"]["local"] == 1
    proxied = await call(sim, "GET", "/nodes/pve2/storage")
    assert (proxied.status, proxied.message) == (595, "No route to host")
    assert (await call(sim, "GET", "/nodes/pve1/storage")).status == 200
    sim.set_node_online("pve2", False, proxy_delay=0.05)
    began = time.monotonic()
    slow = await call(sim, "GET", f"/nodes/pve2/qemu/{on_pve2[0]['vmid']}/status/current")
    assert (slow.status, slow.message) == (595, "Connection timed out") and time.monotonic() - began >= 0.05
    sim.set_node_online("pve2", True)
    assert (await call(sim, "GET", "/nodes/pve2/storage")).status == 200
