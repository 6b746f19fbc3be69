"""The seeded cluster a simulator starts from (and returns to on reset): the nodes and guests of model.py, plus
the storage every node shares (an NFS export and a Proxmox Backup Server datastore) with backups on it, and the
scheduled backup jobs that wrote them."""

from __future__ import annotations

import time

from proxmox_mcp_pve_sim.model import GIB, BackupJob, Cluster, Storage, backup_volume, build_cluster


def seeded_cluster(seed: int, node_count: int, guest_count: int, *, now: float | None = None) -> Cluster:
    now = time.time() if now is None else now
    cluster = build_cluster(seed, node_count, guest_count, now=now)
    add_shared_backup_storage(cluster, int(now))
    return cluster


def add_shared_backup_storage(cluster: Cluster, now: int) -> None:
    """An NFS export and a Proxmox Backup Server datastore, shared by every node (one object, so a backup written
    from one node is seen from all), with backups and the jobs that wrote them."""
    nfs = Storage(
        "nfs-backup", "nfs", "backup,iso", 4096 * GIB, shared=1, path="/mnt/pve/nfs-backup",
        prune_backups="keep-last=3", settings={"server": "192.168.100.5", "export": "/srv/backup"},
    )
    pbs = Storage(
        "pbs-store", "pbs", "backup", 8192 * GIB, shared=1, prune_backups="keep-weekly=4",
        settings={"server": "192.168.100.6", "datastore": "store1", "username": "backup@pbs",
                  "fingerprint": "a5:3b:0c:d2:91:47:6e:18:f0:2c:8d:b4:77:e1:5a:c9:03:6f:ba:42:d8:1e:95:7c:60:b3:"
                                 "2f:a8:c4:11:e7:5d"},
    )
    for node in cluster.nodes.values():
        node.storages[nfs.storage] = nfs
        node.storages[pbs.storage] = pbs
    guests = [g for g in sorted(cluster.guests.values(), key=lambda g: g.vmid) if not g.template]
    weekly = [g for g in guests if g.vmid % 2 == 0]
    for guest in weekly:
        pbs.volumes.append(backup_volume(pbs, guest, now - 6 * 86400 + guest.vmid, (guest.maxdisk or GIB) // 3))
    nightly = guests[:1]
    for guest in nightly:
        for days in (3, 2, 1):
            nfs.volumes.append(backup_volume(nfs, guest, now - days * 86400 - 3600, (guest.maxdisk or GIB) // 4))
    cluster.backup_jobs = [
        BackupJob("backup-5f1c2a7e-31d0", "sat 02:00", pbs.storage, vmid=",".join(str(g.vmid) for g in weekly),
                  comment="weekly to the backup server", prune_backups="keep-weekly=4"),
        BackupJob("backup-9c04d6b1-88e2", "mon..fri 03:30", nfs.storage, vmid=",".join(str(g.vmid) for g in nightly),
                  comment="nightly to NFS"),
        BackupJob("backup-1a7e2f90-c3d4", "*-*-* 21:00", "local", enabled=0, vmid=",".join(
            str(g.vmid) for g in guests[-1:]), comment="old local job (disabled)"),
    ]
