"""The text blocks of the backup tools and guest_network."""

from __future__ import annotations

import time
from typing import Any

from proxmox_mcp_gateway.render import MAX_TEXT, fmt_bytes, render_task, unreachable_lines


def when(epoch: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if epoch else "-"


def age(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _problems(r: dict[str, Any]) -> list[str]:
    return [f"storage {p['storage']}{' on ' + p['node'] if p.get('node') else ''} not read: {p['reason']}"
            for p in r.get("storage_problems") or ()]


def render_backups(r: dict[str, Any]) -> str:
    head = f"{r['count']} backup(s)" + (f" of {r['total']}" if r["total"] != r["count"] else "") + \
        f", newest first; storages read: {', '.join(r['storages']) or 'none'}"
    lines = [head]
    lines.extend(
        f"  {when(i.get('ctime'))} {i.get('type') or '?':<4} {i.get('vmid') or '-':>6} {fmt_bytes(i.get('size')):>10}"
        f"  {i['volid']}" + (" [protected]" if i.get("protected") else "")
        + (f" [verify {i['verified']}]" if i.get("verified") else "")
        + ("" if i.get("shared") else f" (local to {i.get('node')})")
        for i in r["backups"]
    )
    return "\n".join([*lines, *_problems(r), *unreachable_lines(r)])[:MAX_TEXT]


def render_last_backups(r: dict[str, Any]) -> str:
    lines = [f"last backup of {len(r['guests'])} guest(s); never backed up: "
             + (", ".join(str(v) for v in r["never_backed_up"]) or "none")]
    lines.extend(
        (f"  {g['vmid']:>6} {g['type']:<4} {g.get('name') or '-':<16} {age(g.get('age_seconds')):<14}"
        + (f" {when(g.get('last_backup'))} {g['volid']} ({g['backups']} backup(s))" if g.get("volid") else "")
         ).rstrip()
        for g in r["guests"]
    )
    return "\n".join([*lines, *_problems(r), *unreachable_lines(r)])[:MAX_TEXT]


def render_backup_jobs(r: dict[str, Any]) -> str:
    lines = [f"{len(r['jobs'])} backup job(s)"]
    for job in r["jobs"]:
        targets = {"all": "all guests", "all-except": "all guests except " + ",".join(map(str, job["exclude"])),
                   "pool": f"pool {job.get('pool')}"}.get(job["selection"], ",".join(map(str, job["vmids"])))
        state = (f"next {when(job.get('next_run'))} ({job.get('next_run_source')})" if job["enabled"]
                 else "DISABLED")
        lines.append(f"  {job['id']}: '{job.get('schedule')}' {state} -> {job.get('storage') or '-'}, "
                     f"{job.get('mode')}, {targets}" + (f" — {job['comment']}" if job.get("comment") else ""))
    if r.get("not_covered") is not None:
        uncovered = ", ".join(f"{g['vmid']}" + (f" ({g['name']})" if g.get("name") else "") for g in r["not_covered"])
        lines.append("guests no job covers: " + (uncovered or "none"))
    return "\n".join(lines)


def render_backup_start(r: dict[str, Any]) -> str:
    what = "backup" if r["action"] == "backup_guest" else "restore"
    if what == "backup":
        target = f"storage {r['storage']}" if r.get("storage") else "the default storage"
        head = (f"backup of {r.get('type')} {r.get('vmid')} on {r['node']} to {target} (mode {r.get('mode')}, "
                f"{'prunes older backups' if r.get('remove') else 'no pruning'})")
    else:
        head = (f"restore of {r.get('volid')} into {r.get('type')} {r.get('vmid')} on {r['node']}"
                + (" (overwrites it)" if r.get("overwrote") else ""))
    task = r.get("task")
    if not task:
        return f"{head}: task {r['upid']} (started; not waited for: follow it with wait_task)"
    return f"{head}\n{render_task(task)}"


def render_guest_network(r: dict[str, Any]) -> str:
    label = "VM" if r["type"] == "qemu" else "CT"
    lines = [f"{label} {r['vmid']} on {r['node']} (from the {r['source']}): IPv4 {', '.join(r['ipv4']) or '-'}; "
             f"IPv6 {', '.join(r['ipv6']) or '-'}"]
    lines.extend(
        f"  {i['name']:<10} {i.get('mac') or '-':<17} "
        + (", ".join(f"{a['address']}/{a['prefix']}" if a.get("prefix") is not None else a["address"]
                     for a in i["addresses"]) or "no address")
        for i in r["interfaces"]
    )
    return "\n".join(lines)
