"""Backup and restore, each a Proxmox task (the gateway follows it when asked to wait, like any started task).

A backup is `POST /nodes/{node}/vzdump` for one guest with mode and remove always sent (vzdump's own default,
remove=1, prunes older backups). A restore is a create in Proxmox: `POST /nodes/{node}/qemu` with `archive`
(`force` to overwrite) or `POST /nodes/{node}/lxc` with `ostemplate` and `restore=1`; an existing guest must be
stopped first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_api_worker import partial
from proxmox_mcp_api_worker.operations import GUEST_LABEL, GUEST_NOUN, Budget, ClusterOperations
from proxmox_mcp_api_worker.ops_backups import guest_type_of
from proxmox_mcp_api_worker.values import as_int, as_str, seg


def _upid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("UPID:"):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox accepted {what} but returned no task id")
    return value


async def _check_target_storage(ops: ClusterOperations, node: str, storage: str, budget: Budget) -> None:
    """A clear error before vzdump is started: the storage must exist on the node, hold backups and be active."""
    data = await ops.call(budget, "GET", f"/nodes/{seg(node)}/storage")
    entries = [e for e in data if is_object(e)] if is_array(data) else []
    entry = next((e for e in entries if e.get("storage") == storage), None)
    with_backups = sorted(str(e["storage"]) for e in entries if "backup" in str(e.get("content") or "").split(","))
    if entry is None:
        raise ServiceFailure(ErrorCode.NOT_FOUND, f"storage {storage!r} does not exist on node {node} (storages "
                             f"there that hold backups: {', '.join(with_backups) or 'none'})",
                             details={"storage": storage, "node": node})
    if storage not in with_backups:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"storage {storage!r} does not hold backups (content: "
                             f"{entry.get('content') or 'none'}); storages on node {node} that do: "
                             f"{', '.join(with_backups) or 'none'}", details={"storage": storage})
    if entry.get("active", 1) in (0, "0") or entry.get("enabled", 1) in (0, "0"):
        raise ServiceFailure(ErrorCode.CONFLICT, f"storage {storage!r} is not active on node {node}",
                             details={"storage": storage, "node": node})


async def backup_start(ops: ClusterOperations, args: b.BackupGuestArgs, budget: Budget) -> b.BackupStartResult:
    guest = await ops.locate(args.vmid, args.node, budget, args.type)
    if (args.protected or args.notes is not None) and args.storage is None:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "protected and notes need an explicit storage")
    if args.storage is not None:
        await _check_target_storage(ops, guest.node, args.storage, budget)
    remove = args.remove or args.prune_backups is not None
    params: dict[str, Any] = {"vmid": str(guest.vmid), "mode": args.mode, "remove": 1 if remove else 0,
                              "compress": args.compress}
    if args.storage is not None:
        params["storage"] = args.storage
    if args.prune_backups is not None:
        params["prune-backups"] = args.prune_backups
    if args.notes is not None:
        params["notes-template"] = args.notes
    if args.protected:
        params["protected"] = 1
    upid = await ops.call(budget, "POST", f"/nodes/{seg(guest.node)}/vzdump", params)
    return b.BackupStartResult(upid=_upid(upid, f"the backup of {guest.vmid}"), node=guest.node,
                               action="backup_guest", vmid=guest.vmid, type=guest.type, storage=args.storage,
                               mode=args.mode, remove=remove)


async def _find_backup(ops: ClusterOperations, volid: str, node: str | None,
                       budget: Budget) -> tuple[str, Mapping[str, Any]]:
    """(node that sees it, its content entry): the given node, else the online nodes in turn."""
    storage = volid.split(":", 1)[0]
    entries = await ops.nodes(budget)
    candidates, _ = partial.split_online(entries)
    if node is not None:
        if node not in {str(e["node"]) for e in entries}:
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"node {node} is not in cluster {ops.cluster}")
        if node not in candidates:
            raise ServiceFailure(ErrorCode.UNAVAILABLE, f"node {node} is offline", retryable=True,
                                 details={"node": node})
        candidates = [node]
    missing_storage: list[str] = []
    for candidate in candidates:
        path = f"/nodes/{seg(candidate)}/storage/{seg(storage)}/content"
        try:
            data = await ops.call(budget, "GET", path, {"content": "backup"})
        except ServiceFailure as exc:
            if exc.code is ErrorCode.NOT_FOUND:
                missing_storage.append(candidate)
                continue
            raise
        entry = next((e for e in data if is_object(e) and e.get("volid") == volid), None) \
            if is_array(data) else None
        if entry is not None:
            return candidate, entry
    where = ", ".join(candidates) or "none online"
    if candidates and len(missing_storage) == len(candidates):
        raise ServiceFailure(ErrorCode.NOT_FOUND, f"storage {storage!r} does not exist (nodes asked: {where})",
                             details={"storage": storage})
    raise ServiceFailure(ErrorCode.NOT_FOUND, f"no backup {volid} on storage {storage!r} (nodes asked: {where}; "
                         "list_backups shows what there is)", details={"volid": volid})


async def backup_restore(ops: ClusterOperations, args: b.RestoreBackupArgs, budget: Budget) -> b.RestoreStartResult:
    holder, entry = await _find_backup(ops, args.volid, args.node, budget)
    kind = guest_type_of(entry)
    if kind is None:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{args.volid} is not a VM or container backup")
    vmid = args.vmid if args.vmid is not None else as_int(entry.get("vmid"))
    if vmid is None:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{args.volid} names no guest: give vmid")
    existing = next((g for g in await ops.guest_entries(budget) if as_int(g.get("vmid")) == vmid), None)
    label = GUEST_LABEL[kind]
    if existing is not None:
        node = str(existing.get("node"))
        if existing.get("type") != kind:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{args.volid} is the backup of {GUEST_NOUN[kind]}, "
                                 f"but {vmid} is {GUEST_NOUN[existing['type']]}; restore it to another vmid",
                                 details={"vmid": vmid})
        if args.node is not None and args.node != node:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{label} {vmid} is on node {node}, not {args.node}: "
                                 "restore it there, or to a new vmid", details={"vmid": vmid, "node": node})
        status = as_str(existing.get("status"))
        if status == "unknown":
            raise ServiceFailure(ErrorCode.UNAVAILABLE, f"{label} {vmid} is on node {node}, which is offline",
                                 retryable=True, details={"vmid": vmid, "node": node})
        if status != "stopped":
            raise ServiceFailure(ErrorCode.CONFLICT, f"{label} {vmid} is {status}: stop it before restoring over it "
                                 "(the restore replaces its disks and configuration)", details={"vmid": vmid})
        if node != holder:
            await _find_backup(ops, args.volid, node, budget)  # a node's local storage is not seen from others
    else:
        node = args.node or holder
    params: dict[str, Any] = {"vmid": vmid}
    if kind == "qemu":
        params["archive"] = args.volid
    else:
        params.update({"ostemplate": args.volid, "restore": 1})
    if existing is not None:
        params["force"] = 1
    if args.storage is not None:
        params["storage"] = args.storage
    if args.start:
        params["start"] = 1
    if args.unique:
        params["unique"] = 1
    upid = await ops.call(budget, "POST", f"/nodes/{seg(node)}/{kind}", params)
    return b.RestoreStartResult(upid=_upid(upid, f"the restore of {args.volid}"), node=node,
                                action="restore_backup", vmid=vmid, type=kind, volid=args.volid,
                                overwrote=existing is not None)
