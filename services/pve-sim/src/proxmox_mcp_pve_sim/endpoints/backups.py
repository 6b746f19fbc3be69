"""Backups: the scheduled jobs (/cluster/backup, with their next run), which guests no job covers, and vzdump
(`POST /nodes/{node}/vzdump`): a task that logs its progress, writes the archive to the storage, prunes older
backups unless remove=0, and fails like vzdump when the storage is full or the guest is locked."""

from __future__ import annotations

import time
from typing import Any

from proxmox_mcp_contracts.pve_calendar import next_run
from proxmox_mcp_contracts.pve_schema import split_list

from proxmox_mcp_pve_sim import prune
from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import kind_label
from proxmox_mcp_pve_sim.errors import TaskFailed, failed, forbidden
from proxmox_mcp_pve_sim.model import GIB, BackupJob, Cluster, Guest, Storage, backup_volume
from proxmox_mcp_pve_sim.sim import Sim
from proxmox_mcp_pve_sim.tasks import Task

PROGRESS_STEPS = (9, 27, 51, 78, 100)


# --- jobs --------------------------------------------------------------------------------------


def job_entry(job: BackupJob, now: float) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": job.id,
        "type": "vzdump",
        "schedule": job.schedule,
        "storage": job.storage,
        "enabled": job.enabled,
        "mode": job.mode,
        "compress": job.compress,
    }
    if job.all:
        entry["all"] = 1
    entry.update({key: value for key, value in (("vmid", job.vmid), ("exclude", job.exclude),
                                                ("comment", job.comment)) if value})
    if job.prune_backups:
        entry["prune-backups"] = prune.parse_retention(job.prune_backups)
    if job.enabled:
        upcoming = next_run(job.schedule, now)
        if upcoming is not None:
            entry["next-run"] = upcoming
    return entry


def backup_jobs(call: Call) -> list[dict[str, Any]]:
    now = time.time()
    return [job_entry(job, now) for job in call.sim.cluster.backup_jobs]


def backup_job(call: Call) -> dict[str, Any]:
    job = next((j for j in call.sim.cluster.backup_jobs if j.id == call["id"]), None)
    if job is None:
        raise failed(f"job '{call['id']}' does not exist")
    return job_entry(job, time.time())


def backup_info_index(call: Call) -> list[dict[str, str]]:
    return [{"subdir": "not-backed-up"}]


def _covered(cluster: Cluster, job: BackupJob) -> set[int]:
    excluded = {int(v) for v in split_list(job.exclude or "") if v.isdigit()}
    if job.all:
        return set(cluster.guests) - excluded
    return {int(v) for v in split_list(job.vmid or "") if v.isdigit()} & set(cluster.guests)


def not_backed_up(call: Call) -> list[dict[str, Any]]:
    cluster = call.sim.cluster
    covered: set[int] = set()
    for job in cluster.backup_jobs:
        covered |= _covered(cluster, job)
    return [
        {"vmid": guest.vmid, "name": guest.name, "type": guest.kind}
        for guest in sorted(cluster.guests.values(), key=lambda g: g.vmid)
        if guest.vmid not in covered and not guest.template
    ]


# --- vzdump ------------------------------------------------------------------------------------


def _target_storage(call: Call) -> Storage:
    node = call.sim.cluster.nodes[call["node"]]
    name = call.get("storage", "local")
    storage = node.storages.get(name)
    if storage is None:
        raise failed(f"storage '{name}' does not exist")
    if "backup" not in storage.content.split(","):
        raise failed(f"storage '{name}' does not support backups (content types: {storage.content})")
    privs = call.sim.access.privileges(call.caller, f"/storage/{name}")
    if "Datastore.AllocateSpace" not in privs:
        raise forbidden(f"/storage/{name}, Datastore.AllocateSpace")
    if call.get("prune-backups") and "Datastore.Allocate" not in privs:
        raise forbidden(f"/storage/{name}, Datastore.Allocate")
    return storage


def _selected_guests(call: Call) -> list[Guest]:
    sim, node = call.sim, call["node"]
    if call.get("all"):
        excluded = {int(v) for v in split_list(call.get("exclude", "")) if v.isdigit()}
        guests = [g for g in sim.cluster.guests_on(node) if g.vmid not in excluded]
    else:
        wanted = [int(v) for v in split_list(call.get("vmid", "")) if v.isdigit()]
        if not wanted:
            raise failed("no guests selected: give vmid or all")
        guests: list[Guest] = []
        for vmid in wanted:
            guest = sim.cluster.guests.get(vmid)
            if guest is None or guest.node != node:
                raise failed(f"unable to find VM {vmid} on node '{node}'")
            guests.append(guest)
    for guest in guests:
        if "VM.Backup" not in sim.access.privileges(call.caller, f"/vms/{guest.vmid}"):
            raise forbidden(f"/vms/{guest.vmid}, VM.Backup")
    return guests


def _command_line(call: Call) -> str:
    shown = {k: v for k, v in call.params.items() if k != "node" and v is not None}
    vmids = str(shown.pop("vmid", "")).replace(",", " ")
    options = " ".join(f"--{key} {value}" for key, value in sorted(shown.items()))
    return f"vzdump {vmids} {options} --node {call['node']}".replace("  ", " ")


def _notes(template: str | None, guest: Guest, node: str, cluster: str) -> str:
    if template is None:
        return guest.name
    return (template.replace("{{guestname}}", guest.name).replace("{{node}}", node)
            .replace("{{vmid}}", str(guest.vmid)).replace("{{cluster}}", cluster))


def _archive_name(storage: Storage, volid: str) -> str:
    if storage.type == "pbs":
        return volid.split(":", 1)[1].removeprefix("backup/")
    return f"{storage.path or '/mnt/pve/' + storage.storage}/dump/{volid.split('/', 1)[1]}"


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def vzdump(call: Call) -> str:
    sim, node = call.sim, call["node"]
    storage = _target_storage(call)
    guests = _selected_guests(call)
    mode = call.get("mode", "snapshot")
    remove = bool(call.get("remove", 1))
    retention_text = call.get("prune-backups") or storage.prune_backups
    try:
        retention = prune.parse_retention(retention_text)
    except ValueError as exc:
        raise failed(str(exc)) from None
    options = _Options(mode=mode, remove=remove, retention=retention, notes=call.get("notes-template"),
                       protected=bool(call.get("protected")), command=_command_line(call))

    async def body(task: Task) -> None:
        task.write(f"INFO: starting new backup job: {options.command}")
        failures = 0
        for guest in guests:
            failures += 0 if await _back_up(sim, task, guest, node, storage, options) else 1
        if failures:
            task.write("INFO: Backup job finished with errors")
            raise TaskFailed("job errors")
        task.write("INFO: Backup job finished successfully")

    task_id = str(guests[0].vmid) if len(guests) == 1 and not call.get("all") else ""
    return sim.tasks.start(node, "vzdump", task_id, call.caller, body).upid


class _Options:
    def __init__(self, *, mode: str, remove: bool, retention: dict[str, int], notes: str | None, protected: bool,
                 command: str) -> None:
        self.mode, self.remove, self.retention = mode, remove, retention
        self.notes, self.protected, self.command = notes, protected, command


async def _back_up(sim: Sim, task: Task, guest: Guest, node: str, storage: Storage, options: _Options) -> bool:
    """One guest's backup inside the job; False when it failed (the job goes on with the next guest)."""
    label, began = kind_label(guest.kind), time.time()
    task.write(f"INFO: Starting Backup of VM {guest.vmid} ({guest.kind})")
    task.write(f"INFO: Backup started at {_stamp(began)}")
    task.write(f"INFO: status = {guest.status}")
    if guest.lock:
        return _guest_failed(task, guest, f"{label} is locked ({guest.lock})")
    if sim.cluster.guests.get(guest.vmid) is not guest:
        return _guest_failed(task, guest, f"unable to find VM {guest.vmid}")
    guest.lock = "backup"
    mode = options.mode if guest.running else "stop"
    was_running = guest.running
    try:
        task.write(f"INFO: {'VM' if guest.kind == 'qemu' else 'CT'} Name: {guest.name}")
        task.write(f"INFO: backup mode: {mode}")
        task.write("INFO: ionice priority: 7")
        if mode == "stop" and was_running:
            task.write("INFO: stopping virtual guest")
            guest.status, guest.started_at, guest.pid = "stopped", None, None
        elif mode == "suspend" and was_running:
            task.write("INFO: suspending guest")
            guest.paused = True
        ctime = int(time.time())
        taken = {v.volid for v in storage.volumes}
        size = max(guest.maxdisk // 4, GIB // 8)
        volume = backup_volume(storage, guest, ctime, size, _notes(options.notes, guest, node, sim.cluster.name))
        while volume.volid in taken:  # archive names have one-second resolution; a quick sim can go faster
            ctime += 1
            volume = backup_volume(storage, guest, ctime, size, volume.notes)
        volume.protected = 1 if options.protected else 0
        if storage.type == "pbs":
            task.write(f"INFO: creating Proxmox Backup Server archive '{_archive_name(storage, volume.volid)}'")
        else:
            task.write(f"INFO: creating vzdump archive '{_archive_name(storage, volume.volid)}'")
        total = guest.maxdisk or GIB
        for percent in PROGRESS_STEPS:
            await task.work(0.8 / len(PROGRESS_STEPS))
            if storage.full and percent > 50:
                return _guest_failed(task, guest, "vma_queue_write: write error - No space left on device"
                                     if guest.kind == "qemu" else "command 'tar' failed: No space left on device")
            done = total * percent // 100
            task.write(f"INFO: {percent:3d}% ({done / GIB:.1f} GiB of {total / GIB:.1f} GiB) in "
                       f"{max(1, int(time.time() - began))}s, read: 512.0 MiB/s, write: 498.3 MiB/s")
        if mode == "stop" and was_running:
            task.write("INFO: restarting guest")
        elif mode == "suspend" and was_running:
            task.write("INFO: resuming guest")
        task.write(f"INFO: archive file size: {size / GIB:.2f}GB")
        if options.notes is not None:
            task.write("INFO: adding notes to backup")
        if volume.protected:
            task.write("INFO: marking backup as protected")
        storage.volumes.append(volume)
        if options.remove:
            _prune(task, storage, guest, options.retention)
        task.write(f"INFO: Finished Backup of VM {guest.vmid} ({_duration(time.time() - began)})")
        task.write(f"INFO: Backup finished at {_stamp(time.time())}")
        return True
    finally:
        if guest.lock == "backup":
            guest.lock = None
        if was_running and mode == "stop" and not guest.running:
            guest.status, guest.started_at, guest.pid = "running", time.time(), 5000 + guest.vmid
        if was_running and mode == "suspend":
            guest.paused = False
        await task.work(0.2)


def _prune(task: Task, storage: Storage, guest: Guest, retention: dict[str, int]) -> None:
    task.write(f"INFO: prune older backups with retention: {prune.describe(retention)}")
    mine = [v for v in storage.volumes if v.content == "backup" and v.vmid == guest.vmid]
    removed = prune.to_remove(mine, retention)
    for volume in removed:
        task.write(f"INFO: removing backup '{volume.volid}'")
        storage.volumes.remove(volume)
    task.write(f"INFO: pruned {len(removed)} backup(s) not covered by keep-retention policy")


def _guest_failed(task: Task, guest: Guest, reason: str) -> bool:
    task.write(f"ERROR: Backup of VM {guest.vmid} failed - {reason}")
    task.write(f"INFO: Failed at {_stamp(time.time())}")
    return False


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
