"""Reading backups: the backups on every storage that holds them (a shared storage read once, from the first
node that answers), the newest backup of each guest, and the scheduled backup jobs with their next run."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.pve_calendar import CalendarEventError, next_run

from proxmox_mcp_api_worker import partial
from proxmox_mcp_api_worker.operations import Budget, ClusterOperations
from proxmox_mcp_api_worker.values import as_bool, as_int, as_str, flag, seg

FORMAT_TYPES: dict[str, t.GuestType] = {"pbs-vm": "qemu", "pbs-ct": "lxc"}


@dataclass(frozen=True)
class BackupStorage:
    storage: str
    type: str | None
    shared: bool
    nodes: tuple[str, ...]
    """Nodes to read it from, in order (a shared storage: every node that lists it; else its one node)."""
    active: bool


@dataclass
class Scan:
    """What a read of the backup storages found, and what it could not read."""

    backups: list[b.BackupInfo] = field(default_factory=list[b.BackupInfo])
    storages: list[str] = field(default_factory=list[str])
    problems: list[b.StorageProblem] = field(default_factory=list[b.StorageProblem])
    unreachable: list[t.UnreachableNode] = field(default_factory=list[t.UnreachableNode])


def _holds_backups(entry: Mapping[str, Any]) -> bool:
    return "backup" in str(entry.get("content") or "").split(",") and entry.get("enabled", 1) not in (0, "0")


async def backup_storages(ops: ClusterOperations, budget: Budget, *, node: str | None,
                          storage: str | None) -> tuple[list[BackupStorage], list[t.UnreachableNode]]:
    """Every storage that holds backups, as the reachable nodes see it: a shared one once, a local one per node.
    `storage` narrows to one (not_found / invalid_argument when no node has it or it holds no backups)."""
    entries = await ops.nodes(budget)
    if node is not None:
        entries = [e for e in entries if e["node"] == node]
        if not entries:
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"node {node} is not in cluster {ops.cluster}")
        if entries[0].get("status") != "online":
            raise ServiceFailure(ErrorCode.UNAVAILABLE, f"node {node} is offline: its storage cannot be read",
                                 retryable=True, details={"node": node})
    online, down = partial.split_online(entries)
    listed, failed = await ops.per_node(online, lambda name: _storage_entries(ops, name, budget))
    unreachable = down + failed
    partial.require_some(len(listed), unreachable, ops.cluster)
    seen: dict[str, BackupStorage] = {}
    every: dict[str, str] = {}
    for name in sorted(listed):
        for entry in listed[name]:
            sid = str(entry["storage"])
            every.setdefault(sid, str(entry.get("content") or ""))
            if not _holds_backups(entry):
                continue
            shared = bool(as_bool(entry.get("shared")))
            key = sid if shared else f"{sid}@{name}"
            known = seen.get(key)
            active = entry.get("active", 1) not in (0, "0")
            if known is None:
                seen[key] = BackupStorage(sid, as_str(entry.get("type")), shared, (name,), active)
            else:
                seen[key] = BackupStorage(sid, known.type, shared, (*known.nodes, name), known.active or active)
    found = sorted(seen.values(), key=lambda s: (s.storage, s.nodes[0]))
    if storage is not None:
        if storage not in every:
            where = f"; nodes not reachable: {', '.join(u.node for u in unreachable)}" if unreachable else ""
            names = ", ".join(sorted({s.storage for s in found})) or "none"
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"storage {storage!r} does not exist in cluster "
                                 f"{ops.cluster} (storages with backups: {names}){where}",
                                 details={"storage": storage})
        found = [s for s in found if s.storage == storage]
        if not found:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"storage {storage!r} holds no backups (content: "
                                 f"{every[storage] or 'none'})", details={"storage": storage})
    return found, unreachable


async def _storage_entries(ops: ClusterOperations, node: str, budget: Budget) -> list[Mapping[str, Any]]:
    data = await ops.call(budget, "GET", f"/nodes/{seg(node)}/storage")
    if not is_array(data):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's storage list is not a list")
    return [e for e in data if is_object(e) and e.get("storage")]


def guest_type_of(entry: Mapping[str, Any]) -> t.GuestType | None:
    subtype = entry.get("subtype")
    if subtype in ("qemu", "lxc"):
        return subtype
    fmt = str(entry.get("format") or "")
    if fmt in FORMAT_TYPES:
        return FORMAT_TYPES[fmt]
    if fmt.startswith("vma") or "-qemu-" in str(entry.get("volid")):
        return "qemu"
    if fmt.startswith(("tar", "tgz")) or "-lxc-" in str(entry.get("volid")):
        return "lxc"
    return None


def backup_info(entry: Mapping[str, Any], store: BackupStorage, node: str) -> b.BackupInfo:
    verification = entry.get("verification")
    encrypted = entry.get("encrypted")
    return b.BackupInfo(
        volid=str(entry["volid"]), storage=store.storage, node=None if store.shared else node, shared=store.shared,
        storage_type=store.type, vmid=as_int(entry.get("vmid")), type=guest_type_of(entry),
        format=as_str(entry.get("format")), size=as_int(entry.get("size")), ctime=as_int(entry.get("ctime")),
        notes=as_str(entry.get("notes")), protected=as_bool(entry.get("protected")),
        encrypted=None if encrypted is None else encrypted not in (0, "0", ""),
        verified=as_str(verification.get("state")) if is_object(verification) else None,
    )


async def _read(ops: ClusterOperations, store: BackupStorage, vmid: int | None,
                budget: Budget) -> list[b.BackupInfo] | b.StorageProblem:
    """One storage's backups, from the first of its nodes that answers."""
    params: dict[str, Any] = {"content": "backup"}
    if vmid is not None:
        params["vmid"] = vmid
    reasons: list[str] = []
    for node in store.nodes:
        path = f"/nodes/{seg(node)}/storage/{seg(store.storage)}/content"
        try:
            data = await ops.call(budget, "GET", path, params)
        except ServiceFailure as exc:
            reasons.append(f"{node}: {exc.info.message}")
            continue
        if not is_array(data):
            reasons.append(f"{node}: the content list is not a list")
            continue
        return [backup_info(e, store, node) for e in data
                if is_object(e) and e.get("volid") and e.get("content", "backup") == "backup"]
    reason = ("inactive on " if not store.active else "") + "; ".join(reasons)
    return b.StorageProblem(storage=store.storage, node=None if store.shared else store.nodes[0], reason=reason)


async def scan(ops: ClusterOperations, budget: Budget, *, vmid: int | None = None, node: str | None = None,
               storage: str | None = None) -> Scan:
    stores, unreachable = await backup_storages(ops, budget, node=node, storage=storage)
    gate = asyncio.Semaphore(ops.node_concurrency)

    async def one(store: BackupStorage) -> list[b.BackupInfo] | b.StorageProblem:
        async with gate:
            return await _read(ops, store, vmid, budget)

    found = Scan(unreachable=unreachable)
    for store, result in zip(stores, await asyncio.gather(*(one(s) for s in stores)), strict=True):
        if isinstance(result, b.StorageProblem):
            found.problems.append(result)
        else:
            found.backups.extend(result)
            if store.storage not in found.storages:
                found.storages.append(store.storage)
    found.backups.sort(key=lambda item: (item.ctime or 0, item.volid), reverse=True)
    found.storages.sort()
    return found


async def backup_list(ops: ClusterOperations, args: b.ListBackupsArgs, budget: Budget) -> b.BackupListResult:
    found = await scan(ops, budget, vmid=args.vmid, node=args.node, storage=args.storage)
    shown = found.backups[: args.limit]
    return b.BackupListResult(backups=shown, count=len(shown), total=len(found.backups), storages=found.storages,
                              storage_problems=found.problems, **partial.partial_fields(found.unreachable))


async def backup_last(ops: ClusterOperations, args: b.LastBackupsArgs, budget: Budget) -> b.LastBackupsResult:
    """Proxmox keeps no 'last backup' per guest: it is the newest backup's ctime on the storages."""
    guests = [g for g in await ops.guest_entries(budget) if args.vmid is None or as_int(g.get("vmid")) == args.vmid]
    if args.vmid is not None and not guests:
        raise ServiceFailure(ErrorCode.NOT_FOUND, f"VM {args.vmid} not found in cluster {ops.cluster}",
                             details={"vmid": args.vmid})
    found = await scan(ops, budget, vmid=args.vmid)
    now = int(time.time())
    newest: dict[int, b.BackupInfo] = {}
    counts: dict[int, int] = {}
    for item in found.backups:  # newest first
        if item.vmid is not None:
            newest.setdefault(item.vmid, item)
            counts[item.vmid] = counts.get(item.vmid, 0) + 1
    rows: list[b.GuestLastBackup] = []
    for guest in sorted(guests, key=lambda g: int(g["vmid"])):
        vmid = int(guest["vmid"])
        last = newest.get(vmid)
        rows.append(b.GuestLastBackup(
            vmid=vmid, name=as_str(guest.get("name")), type=guest["type"], node=str(guest.get("node")),
            last_backup=last.ctime if last else None,
            age_seconds=now - last.ctime if last and last.ctime is not None else None,
            volid=last.volid if last else None, storage=last.storage if last else None, backups=counts.get(vmid, 0),
        ))
    return b.LastBackupsResult(
        guests=rows, never_backed_up=[row.vmid for row in rows if row.last_backup is None],
        storages=found.storages, storage_problems=found.problems, checked_at=now,
        **partial.partial_fields(found.unreachable),
    )


# --- jobs --------------------------------------------------------------------------------------


def _vmids(text: Any) -> list[int]:
    return sorted({int(part) for part in str(text or "").replace(" ", ",").split(",") if part.strip().isdigit()})


def _retention(value: Any) -> str | None:
    if is_object(value):
        return ",".join(f"{key}={val}" for key, val in sorted(value.items())) or None
    return as_str(value)


def backup_job(entry: Mapping[str, Any]) -> b.BackupJob:
    everything = flag(entry.get("all"))
    exclude = _vmids(entry.get("exclude"))
    if everything:
        selection = "all-except" if exclude else "all"
    elif entry.get("pool"):
        selection = "pool"
    else:
        selection = "vmids"
    return b.BackupJob(
        id=str(entry["id"]), enabled=entry.get("enabled", 1) not in (0, "0", False),
        schedule=as_str(entry.get("schedule")), next_run=as_int(entry.get("next-run")),
        next_run_source="proxmox" if entry.get("next-run") is not None else None,
        storage=as_str(entry.get("storage")), mode=as_str(entry.get("mode")) or "snapshot", selection=selection,
        vmids=_vmids(entry.get("vmid")), exclude=exclude, pool=as_str(entry.get("pool")),
        node=as_str(entry.get("node")), remove=flag(entry.get("remove", 1)),
        prune_backups=_retention(entry.get("prune-backups")), comment=as_str(entry.get("comment")),
    )


async def _cluster_time_zone(ops: ClusterOperations, budget: Budget) -> dt.tzinfo:
    """The time zone schedules run in (a node's); UTC when no node says."""
    online, _ = partial.split_online(await ops.nodes(budget))
    for node in online[:1]:
        try:
            data = await ops.call(budget, "GET", f"/nodes/{seg(node)}/time")
            return ZoneInfo(str(data.get("timezone"))) if is_object(data) else dt.UTC
        except (ServiceFailure, ZoneInfoNotFoundError, ValueError):
            return dt.UTC
    return dt.UTC


async def backup_jobs(ops: ClusterOperations, _args: b.BackupJobsArgs, budget: Budget) -> b.BackupJobsResult:
    """/cluster/backup. Proxmox gives each enabled job's next run (next-run); a job without one gets it computed
    here from its schedule, in the cluster's time zone."""
    data = await ops.call(budget, "GET", "/cluster/backup")
    if not is_array(data):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's backup job list is not a list")
    jobs = [backup_job(e) for e in data if is_object(e) and e.get("id")]
    missing = [job for job in jobs if job.enabled and job.next_run is None and job.schedule]
    if missing:
        zone = await _cluster_time_zone(ops, budget)
        for job in missing:
            try:
                job.next_run = next_run(job.schedule or "", time.time(), zone)
            except CalendarEventError:
                continue
            job.next_run_source = "computed" if job.next_run is not None else None
    jobs.sort(key=lambda job: (not job.enabled, job.next_run is None, job.next_run or 0, job.id))
    try:
        uncovered = await ops.call(budget, "GET", "/cluster/backup-info/not-backed-up")
    except ServiceFailure:
        uncovered = None  # older Proxmox, or the token may not read it: say nothing rather than guess
    not_covered = None
    if is_array(uncovered):
        not_covered = [b.UncoveredGuest(vmid=int(e["vmid"]), name=as_str(e.get("name")),
                                        type=e.get("type") if e.get("type") in ("qemu", "lxc") else None)
                       for e in uncovered if is_object(e) and as_int(e.get("vmid")) is not None]
    return b.BackupJobsResult(jobs=jobs, not_covered=not_covered)
