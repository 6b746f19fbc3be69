"""Backup retention (prune-backups) the way Proxmox applies it: keep-last, then one backup per hour, day, ISO
week, month and year, newest first; protected backups are never removed; no options at all keeps everything."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from proxmox_mcp_pve_sim.model import Volume

OPTIONS = ("keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly")


def parse_retention(text: str | None) -> dict[str, int]:
    """`keep-last=3,keep-weekly=2` -> {"keep-last": 3, "keep-weekly": 2}; ValueError names a bad option."""
    retention: dict[str, int] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key not in (*OPTIONS, "keep-all") or not value.isdigit():
            raise ValueError(f"invalid retention option '{part}'")
        retention[key] = int(value)
    return retention


def describe(retention: dict[str, int]) -> str:
    return ", ".join(f"{key}={value}" for key, value in retention.items()) or "keep-all=1"


def _bucket(option: str) -> Callable[[Volume], str]:
    formats = {
        "keep-hourly": "%Y/%m/%d/%H",
        "keep-daily": "%Y/%m/%d",
        "keep-weekly": "%G/%V",
        "keep-monthly": "%Y/%m",
        "keep-yearly": "%Y",
    }
    return lambda volume: time.strftime(formats[option], time.gmtime(volume.ctime))


def to_remove(backups: Sequence[Volume], retention: dict[str, int]) -> list[Volume]:
    """The backups (of one guest on one storage) that the retention does not keep."""
    if not retention or retention.get("keep-all") or not any(retention.get(o) for o in OPTIONS):
        return []
    newest_first = sorted(backups, key=lambda v: v.ctime, reverse=True)
    kept: set[str] = set()
    for option in OPTIONS:
        keep = retention.get(option, 0)
        if not keep:
            continue
        select: Callable[[Volume], str] = (lambda volume: volume.volid) if option == "keep-last" else _bucket(option)
        covered = {select(v) for v in newest_first if v.volid in kept}
        chosen: set[str] = set()
        for volume in newest_first:
            if volume.volid in kept or volume.protected:
                continue
            bucket = select(volume)
            if bucket in covered or bucket in chosen:
                continue
            if len(chosen) >= keep:
                break
            chosen.add(bucket)
            kept.add(volume.volid)
    return [v for v in newest_first if v.volid not in kept and not v.protected]
