"""Argument and result models of the backup tools (list, back up now, restore, jobs, last backups) and of
guest_network. Parameter names and limits follow the Proxmox VE 9.1 API schema (`/nodes/{node}/vzdump`,
`/cluster/backup`, storage content)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.tools import GuestType, NodeName, PartialResult, VmId
from proxmox_mcp_contracts.tools_extra import STORAGE_ID_PATTERN, GuestRef, TaskStartResult

BackupMode = Literal["snapshot", "suspend", "stop"]
Compression = Literal["zstd", "gzip", "lzo", "0"]
BACKUP_VOLID_PATTERN = r"^[A-Za-z][A-Za-z0-9\-_.]{0,63}:[^\s\x00]{1,250}$"
"""`STORAGE:backup/...` on file storages, `STORAGE:backup/vm/100/2025-...Z` on Proxmox Backup Server."""
PRUNE_OPTION = re.compile(r"^keep-(all|last|hourly|daily|weekly|monthly|yearly)=\d{1,6}$")
NO_DOWNTIME_MODE: BackupMode = "snapshot"
"""The only vzdump mode that neither stops nor suspends the guest."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


StorageId = str


# --- arguments -------------------------------------------------------------------------------


class ListBackupsArgs(_Args):
    vmid: VmId | None = Field(default=None, description="Only backups of this guest")
    storage: StorageId | None = Field(default=None, pattern=STORAGE_ID_PATTERN, max_length=64,
                                      description="Only this storage (default: every storage that holds backups)")
    node: NodeName | None = Field(default=None, description="Only storage as seen from this node (default: all "
                                  "nodes; a shared storage is listed once)")
    limit: int = Field(default=200, ge=1, le=2000, description="Newest backups first, at most this many")


class LastBackupsArgs(_Args):
    vmid: VmId | None = Field(default=None, description="Only this guest")


class BackupJobsArgs(_Args):
    pass


class BackupGuestArgs(GuestRef):
    """vzdump of one guest. At operate scope only the options that cause no downtime and delete nothing:
    mode=snapshot and remove=false (vzdump prunes older backups by default). Anything else needs admin."""

    storage: StorageId | None = Field(default=None, pattern=STORAGE_ID_PATTERN, max_length=64,
                                      description="Target storage (must hold backups); default: Proxmox's vzdump "
                                      "default (storage 'local' unless /etc/vzdump.conf says otherwise)")
    mode: BackupMode = Field(default=NO_DOWNTIME_MODE, description="snapshot: no downtime; suspend and stop pause "
                             "or stop the guest during the backup (admin scope and confirmation)")
    remove: bool = Field(default=False, description="Prune older backups of this guest per the storage's "
                         "retention (or prune_backups) after this one; deletes backups (admin scope and "
                         "confirmation)")
    prune_backups: str | None = Field(default=None, max_length=200, description="Retention for the pruning, e.g. "
                                      "'keep-last=3,keep-weekly=2' (admin scope and confirmation; implies remove)")
    compress: Compression = Field(default="zstd", description="Compression of the archive (ignored by Proxmox "
                                  "Backup Server storages)")
    notes: str | None = Field(default=None, max_length=1024, description="Notes for the backup; may use "
                              "{{guestname}}, {{node}}, {{vmid}}, {{cluster}}")
    protected: bool = Field(default=False, description="Mark the backup protected (pruning keeps it); needs "
                            "storage")
    wait: bool = Field(default=False, description="Follow the backup task to its end (progress while waiting)")
    wait_timeout: int = Field(default=3600, ge=1, le=3600, description="Seconds to wait when wait is true")

    @field_validator("prune_backups")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is None:
            return None
        options = [part.strip() for part in value.split(",")]
        bad = [part for part in options if not PRUNE_OPTION.match(part)]
        if bad or not options:
            raise ValueError("prune_backups must be comma-separated keep-all|keep-last|keep-hourly|keep-daily|"
                             "keep-weekly|keep-monthly|keep-yearly=N options")
        return ",".join(options)

    @field_validator("notes")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(ch in value for ch in "\r\n\x00"):
            raise ValueError("notes must be a single line")
        return value

    def changes_more_than_it_adds(self) -> bool:
        """True when the backup causes downtime or deletes backups: admin scope and confirmation."""
        return self.mode != NO_DOWNTIME_MODE or self.remove or self.prune_backups is not None

    def required_scope(self) -> Scope:
        """The one rule for backup_guest's scope; the gateway and the api-worker both apply it."""
        return Scope.ADMIN if self.changes_more_than_it_adds() else Scope.OPERATE


class RestoreBackupArgs(_Args):
    volid: str = Field(pattern=BACKUP_VOLID_PATTERN, max_length=320, description="The backup's volume id, as "
                       "list_backups gives it, e.g. local:backup/vzdump-qemu-100-2025_11_20-02_00_03.vma.zst")
    vmid: VmId | None = Field(default=None, description="Guest to restore into (default: the backup's own vmid). "
                              "An existing guest is overwritten and must be stopped")
    node: NodeName | None = Field(default=None, description="Node to restore on (default: the existing guest's "
                                  "node, else the node that holds the backup)")
    storage: StorageId | None = Field(default=None, pattern=STORAGE_ID_PATTERN, max_length=64,
                                      description="Storage for the restored disks (default: as in the backup)")
    start: bool = Field(default=False, description="Start the guest after the restore")
    unique: bool = Field(default=False, description="Give the restored guest new MAC addresses")
    wait: bool = Field(default=False, description="Follow the restore task to its end (progress while waiting)")
    wait_timeout: int = Field(default=3600, ge=1, le=3600, description="Seconds to wait when wait is true")


class GuestNetworkArgs(GuestRef):
    pass


# --- results ---------------------------------------------------------------------------------


class BackupInfo(_Result):
    volid: str
    storage: str
    node: str | None = Field(default=None, description="The node whose storage holds it; null on shared storage "
                             "(reachable from every node)")
    shared: bool = False
    storage_type: str | None = Field(default=None, description="dir, nfs, pbs (Proxmox Backup Server), ...")
    vmid: int | None = None
    type: GuestType | None = Field(default=None, description="Guest type the backup is of")
    format: str | None = None
    size: int | None = None
    ctime: int | None = Field(default=None, description="Creation time, seconds since the epoch")
    notes: str | None = None
    protected: bool | None = None
    encrypted: bool | None = None
    verified: str | None = Field(default=None, description="Last verification state (Proxmox Backup Server)")


class StorageProblem(_Result):
    storage: str
    node: str | None = None
    reason: str


class BackupListResult(PartialResult):
    backups: list[BackupInfo] = Field(description="Newest first")
    count: int
    total: int = Field(description="Backups found before the limit")
    storages: list[str] = Field(description="Storages read (a shared one once)")
    storage_problems: list[StorageProblem] = Field(default_factory=list[StorageProblem],
                                                   description="Storages whose content "
                                                   "could not be read (inactive, unreachable backup server, ...)")


class GuestLastBackup(_Result):
    vmid: int
    name: str | None = None
    type: GuestType
    node: str
    last_backup: int | None = Field(default=None, description="ctime of the newest backup; null: none found")
    age_seconds: int | None = None
    volid: str | None = None
    storage: str | None = None
    backups: int = Field(default=0, description="How many backups of this guest were found")


class LastBackupsResult(PartialResult):
    guests: list[GuestLastBackup] = Field(description="Sorted by vmid; Proxmox keeps no 'last run' per guest, so "
                                          "this is the newest backup found on the readable storages")
    never_backed_up: list[int] = Field(description="Guests without any backup on the readable storages")
    storages: list[str]
    storage_problems: list[StorageProblem] = Field(default_factory=list[StorageProblem])
    checked_at: int = Field(description="When the ages were computed, seconds since the epoch")


class BackupJob(_Result):
    id: str
    enabled: bool
    schedule: str | None = None
    next_run: int | None = Field(default=None, description="Next start, seconds since the epoch")
    next_run_source: Literal["proxmox", "computed"] | None = Field(
        default=None, description="proxmox: Proxmox's own next-run; computed: from the schedule here (Proxmox "
        "gave none), in the node's time zone")
    storage: str | None = None
    mode: str | None = None
    selection: str = Field(description="all, vmids (see vmids), pool or all-except")
    vmids: list[int] = Field(default_factory=list[int])
    exclude: list[int] = Field(default_factory=list[int])
    pool: str | None = None
    node: str | None = Field(default=None, description="Only guests on this node")
    remove: bool | None = Field(default=None, description="Whether the job prunes older backups")
    prune_backups: str | None = None
    comment: str | None = None


class UncoveredGuest(_Result):
    vmid: int
    name: str | None = None
    type: GuestType | None = None


class BackupJobsResult(_Result):
    jobs: list[BackupJob] = Field(description="Sorted by next run (disabled jobs last)")
    not_covered: list[UncoveredGuest] | None = Field(
        default=None, description="Guests no backup job includes (Proxmox's /cluster/backup-info/not-backed-up); "
        "null when Proxmox could not say")


class BackupStartResult(TaskStartResult):
    storage: str | None = None
    mode: BackupMode | None = None
    remove: bool | None = None


class RestoreStartResult(TaskStartResult):
    volid: str
    overwrote: bool = Field(description="True when an existing guest was replaced")


class GuestIpAddress(_Result):
    address: str
    prefix: int | None = None
    family: Literal["ipv4", "ipv6"]


class GuestInterface(_Result):
    name: str
    mac: str | None = None
    addresses: list[GuestIpAddress] = Field(default_factory=list[GuestIpAddress])
    rx_bytes: int | None = None
    tx_bytes: int | None = None


class GuestNetworkResult(_Result):
    vmid: int
    node: str
    type: GuestType
    source: Literal["guest-agent", "container"] = Field(description="guest-agent: the QEMU guest agent's "
                                                        "network-get-interfaces; container: the host's view of "
                                                        "the container's interfaces")
    interfaces: list[GuestInterface]
    ipv4: list[str] = Field(description="IPv4 addresses outside loopback")
    ipv6: list[str] = Field(description="IPv6 addresses outside loopback and link-local")

