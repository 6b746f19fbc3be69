"""The backup tools (list, last backup per guest, jobs, back up now, restore) and guest_network."""

from __future__ import annotations

from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp, WorkerKind
from pydantic import BaseModel

from proxmox_mcp_gateway import render_backups as r
from proxmox_mcp_gateway import tool_args as a
from proxmox_mcp_gateway.spec import Annotations, TaskMode, ToolSpec, always

READ = Annotations(read_only=True, destructive=False, idempotent=True)
_WAIT = ("Returns the Proxmox task id (UPID) at once; with wait=true it follows the task to its end (progress "
         "notifications with the task's log lines while waiting; cancelling stops the wait, not the task) and "
         "returns its exit status and log tail.")
_CONFIRM = "Needs confirmation: the user is asked when the client supports it, otherwise pass confirm=true."


def backup_scope(args: BaseModel) -> Scope:
    """backup_guest's scope: the contracts' one rule (the api-worker re-checks with the same)."""
    return args.required_scope() if isinstance(args, b.BackupGuestArgs) else Scope.OPERATE


def backup_is_destructive(args: BaseModel) -> bool:
    return isinstance(args, b.BackupGuestArgs) and args.changes_more_than_it_adds()


BACKUP_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_backups",
        title="List backups",
        description="The backups (vzdump archives and Proxmox Backup Server snapshots) on every storage that holds "
        "them, newest first, with guest, size, time, notes, protection and verification; a shared storage is read "
        "once. Filter by vmid, storage or node. Nodes that do not answer are named; their local storages are "
        "missing from the list. One API call per node and per backup storage.",
        args_model=a.ListBackupsToolArgs,
        result_model=b.BackupListResult,
        kind=WorkerKind.API,
        op=ApiOp.BACKUP_LIST,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_backups,
    ),
    ToolSpec(
        name="last_backups",
        title="When each guest was last backed up",
        description="For every guest (or one vmid): the time and age of its newest backup, which one and where, "
        "and the guests with no backup at all. Proxmox keeps no 'last backup' per guest: this reads the backup "
        "storages like list_backups.",
        args_model=a.LastBackupsToolArgs,
        result_model=b.LastBackupsResult,
        kind=WorkerKind.API,
        op=ApiOp.BACKUP_LAST,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_last_backups,
    ),
    ToolSpec(
        name="backup_jobs",
        title="Scheduled backup jobs",
        description="The scheduled backup jobs (/cluster/backup): schedule, next run, target storage, mode, which "
        "guests, retention; and the guests no job covers. Two API calls.",
        args_model=a.BackupJobsToolArgs,
        result_model=b.BackupJobsResult,
        kind=WorkerKind.API,
        op=ApiOp.BACKUP_JOBS,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_backup_jobs,
    ),
    ToolSpec(
        name="backup_guest",
        title="Back up a guest now",
        description="Back up one VM or container now (vzdump) to a storage that holds backups. " + _WAIT + " At "
        "operate scope only mode=snapshot (no downtime) without pruning (remove=false); suspend/stop modes, "
        "remove=true and prune_backups pause or stop the guest or delete older backups: they need admin scope. "
        + _CONFIRM.replace("Needs", "Those need"),
        args_model=a.BackupGuestToolArgs,
        result_model=b.BackupStartResult,
        kind=WorkerKind.API,
        op=ApiOp.BACKUP_START,
        scope=Scope.OPERATE,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_backup_start,
        task=TaskMode.STARTS,
        destructive_when=backup_is_destructive,
        scope_when=backup_scope,
    ),
    ToolSpec(
        name="restore_backup",
        title="Restore a backup",
        description="Restore a backup (volid from list_backups) into its guest or another vmid. Restoring over an "
        "existing guest replaces its disks and configuration: it must be stopped first. " + _WAIT + " Needs admin "
        "scope. " + _CONFIRM,
        args_model=a.RestoreBackupToolArgs,
        result_model=b.RestoreStartResult,
        kind=WorkerKind.API,
        op=ApiOp.BACKUP_RESTORE,
        scope=Scope.ADMIN,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        render=r.render_backup_start,
        task=TaskMode.STARTS,
        destructive_when=always,
    ),
)

GUEST_NETWORK_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="guest_network",
        title="IP addresses of a guest",
        description="A guest's network interfaces, MAC and IP addresses: a VM's through its QEMU guest agent "
        "(agent enabled and qemu-guest-agent running inside), a container's from its host. Fails clearly when "
        "the guest is not running, the VM has no agent configured, or the agent does not answer. One API call.",
        args_model=a.GuestNetworkToolArgs,
        result_model=b.GuestNetworkResult,
        kind=WorkerKind.API,
        op=ApiOp.GUEST_NETWORK,
        scope=Scope.READ,
        annotations=READ,
        render=r.render_guest_network,
    ),
)
