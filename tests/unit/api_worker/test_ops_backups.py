"""Backup, partial-result and guest-network logic over a scripted backend, for the answers the simulator does not
give: a job without Proxmox's next-run, a backup server that cannot be read, a hung guest agent, a shared storage
seen from several nodes."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from proxmox_mcp_api_worker import ops_backup_tasks, ops_backups, ops_guestnet
from proxmox_mcp_api_worker.handlers import check_argument_scope
from proxmox_mcp_api_worker.operations import Guest
from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.pve_calendar import next_run

from tests.unit.api_worker.test_operations import _budget, _ops

NODES = [{"node": "pve1", "status": "online"}, {"node": "pve2", "status": "online"},
         {"node": "pve3", "status": "offline"}]
STORAGE = [
    {"storage": "local", "type": "dir", "content": "backup,iso", "shared": 0, "active": 1},
    {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "shared": 0, "active": 1},
    {"storage": "pbs", "type": "pbs", "content": "backup", "shared": 1, "active": 1},
]
PBS_ITEM = {"volid": "pbs:backup/vm/100/2025-11-15T02:00:00Z", "content": "backup", "format": "pbs-vm",
            "ctime": 1_763_172_000, "size": 10, "vmid": 100, "verification": {"state": "failed", "upid": "x"},
            "encrypted": "aa:bb"}
LOCAL_ITEM = {"volid": "local:backup/vzdump-lxc-200-2025_11_18-21_00_00.tar.zst", "content": "backup",
              "format": "tar.zst", "ctime": 1_763_499_600, "size": 5, "vmid": 200}


async def test_a_shared_storage_is_read_once_and_an_unreadable_one_is_reported_not_fatal() -> None:
    ops, backend = _ops({
        ("GET", "/nodes"): NODES,
        ("GET", "/nodes/pve1/storage"): STORAGE,
        ("GET", "/nodes/pve2/storage"): STORAGE,
        ("GET", "/nodes/pve1/storage/pbs/content"): ServiceFailure(ErrorCode.UPSTREAM_ERROR, "pbs unreachable"),
        ("GET", "/nodes/pve2/storage/pbs/content"): [PBS_ITEM],
        ("GET", "/nodes/pve1/storage/local/content"): [LOCAL_ITEM],
        ("GET", "/nodes/pve2/storage/local/content"): ServiceFailure(ErrorCode.UPSTREAM_ERROR, "broken disk"),
    })
    result = await ops_backups.backup_list(ops, b.ListBackupsArgs(), _budget())
    assert [i.volid for i in result.backups] == [LOCAL_ITEM["volid"], PBS_ITEM["volid"]]  # newest first
    pbs = result.backups[1]
    assert (pbs.node, pbs.shared, pbs.type, pbs.verified, pbs.encrypted) == (None, True, "qemu", "failed", True)
    assert (result.backups[0].node, result.backups[0].type) == ("pve1", "lxc")
    assert [(p.storage, p.node) for p in result.storage_problems] == [("local", "pve2")]
    assert result.unreachable_nodes == ["pve3"]
    asked = [path for _, path, _, _ in backend.requests if path.endswith("/content")]
    assert asked.count("/nodes/pve2/storage/pbs/content") == 1  # the fallback node, after pve1 failed
    assert "/nodes/pve1/storage/local-lvm/content" not in asked


async def test_a_job_without_proxmox_next_run_gets_it_from_its_schedule_in_the_nodes_time_zone() -> None:
    jobs = [{"id": "weekly", "schedule": "sat 02:00", "enabled": 1, "storage": "pbs", "all": 1, "exclude": "105"},
            {"id": "given", "schedule": "daily", "enabled": 1, "next-run": 2_000_000_000, "vmid": "100,101"},
            {"id": "off", "schedule": "daily", "enabled": 0, "pool": "prod",
             "prune-backups": {"keep-last": 3, "keep-daily": 7}}]
    ops, _ = _ops({("GET", "/cluster/backup"): jobs, ("GET", "/nodes"): NODES,
                   ("GET", "/nodes/pve1/time"): {"timezone": "Europe/Berlin", "time": 1, "localtime": 1},
                   ("GET", "/cluster/backup-info/not-backed-up"): ServiceFailure(ErrorCode.NOT_FOUND, "501")})
    before = time.time()
    result = await ops_backups.backup_jobs(ops, b.BackupJobsArgs(), _budget())
    weekly, given, off = result.jobs
    assert (weekly.id, weekly.next_run_source, weekly.selection, weekly.exclude) == \
        ("weekly", "computed", "all-except", [105])
    assert weekly.next_run == next_run("sat 02:00", before, ZoneInfo("Europe/Berlin"))
    assert dt.datetime.fromtimestamp(weekly.next_run or 0, ZoneInfo("Europe/Berlin")).strftime("%a %H:%M") == \
        "Sat 02:00"
    assert (given.next_run, given.next_run_source, given.vmids) == (2_000_000_000, "proxmox", [100, 101])
    assert (off.enabled, off.next_run, off.selection, off.prune_backups) == \
        (False, None, "pool", "keep-daily=7,keep-last=3")
    assert result.not_covered is None  # Proxmox could not say: not guessed


def test_the_backup_scope_rule_is_one_function_the_worker_applies_too() -> None:
    assert b.BackupGuestArgs(vmid=100).required_scope() is Scope.OPERATE
    for extra in ({"mode": "stop"}, {"mode": "suspend"}, {"remove": True}, {"prune_backups": "keep-last=2"}):
        args = b.BackupGuestArgs.model_validate({"vmid": 100, **extra})
        assert args.required_scope() is Scope.ADMIN, extra
        with pytest.raises(ServiceFailure) as caught:
            check_argument_scope(args, Scope.OPERATE)
        assert caught.value.code is ErrorCode.PERMISSION_DENIED
        check_argument_scope(args, Scope.ADMIN)
    check_argument_scope(b.BackupGuestArgs(vmid=100), Scope.OPERATE)


async def test_vzdump_always_gets_mode_and_remove_so_its_pruning_default_never_applies() -> None:
    ops, backend = _ops({("POST", "/nodes/pve1/vzdump"): "UPID:pve1:00000001:00000001:65000001:vzdump:100:root@pam:"})
    started = await ops_backup_tasks.backup_start(ops, b.BackupGuestArgs(vmid=100), _budget())
    method, path, params, _ = backend.requests[-1]
    assert (method, path) == ("POST", "/nodes/pve1/vzdump")
    assert params == {"vmid": "100", "mode": "snapshot", "remove": 0, "compress": "zstd"}
    assert (started.action, started.remove, started.vmid, started.type) == ("backup_guest", False, 100, "qemu")
    await ops_backup_tasks.backup_start(ops, b.BackupGuestArgs(vmid=100, prune_backups="keep-last=1"), _budget())
    assert backend.requests[-1][2] == {"vmid": "100", "mode": "snapshot", "remove": 1, "compress": "zstd",
                                       "prune-backups": "keep-last=1"}


@pytest.mark.parametrize(("message", "code", "reason"), [
    ("No QEMU guest agent configured", ErrorCode.CONFLICT, "agent_not_configured"),
    ("VM 100 is not running", ErrorCode.CONFLICT, "guest_not_running"),
    ("QEMU guest agent is not running", ErrorCode.UNAVAILABLE, "agent_not_responding"),
    ("VM 100 qmp command 'guest-network-get-interfaces' failed - got timeout", ErrorCode.UNAVAILABLE,
     "agent_not_responding"),
])
def test_proxmoxs_agent_answers_become_three_distinct_failures(message: str, code: ErrorCode, reason: str) -> None:
    guest = Guest(vmid=100, node="pve1", type="qemu", entry={})
    failure = ops_guestnet.agent_failure(ServiceFailure(ErrorCode.UPSTREAM_ERROR, message), guest)
    assert (failure.code, failure.info.details["reason"]) == (code, reason)


def test_an_other_agent_failure_passes_unchanged() -> None:
    guest = Guest(vmid=100, node="pve1", type="qemu", entry={})
    original = ServiceFailure(ErrorCode.UNAVAILABLE, "node pve1 is unreachable: ...")
    assert ops_guestnet.agent_failure(original, guest) is original


async def test_a_stopped_container_answers_no_interfaces_and_that_is_guest_not_running() -> None:
    ops, _ = _ops({("GET", "/nodes/pve2/lxc/200/interfaces"): None})
    with pytest.raises(ServiceFailure) as caught:
        await ops_guestnet.guest_network(ops, b.GuestNetworkArgs(vmid=200), _budget())
    assert caught.value.code is ErrorCode.CONFLICT and caught.value.info.details["reason"] == "guest_not_running"


async def test_older_container_answers_with_inet_strings_still_give_addresses() -> None:
    ops, _ = _ops({("GET", "/nodes/pve2/lxc/200/interfaces"): [
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
        {"name": "eth0", "hwaddr": "bc:24:11:00:00:01", "inet": "10.0.0.5/24", "inet6": "fe80::1/64"},
        {"name": "eth1", "hwaddr": "bc:24:11:00:00:02", "inet6": "2001:db8::5/64"},
    ]})
    result = await ops_guestnet.guest_network(ops, b.GuestNetworkArgs(vmid=200), _budget())
    assert (result.ipv4, result.ipv6) == (["10.0.0.5"], ["2001:db8::5"])
    assert [(a.address, a.prefix) for a in result.interfaces[0].addresses] == [("10.0.0.5", 24), ("fe80::1", 64)]
