"""Proxmox task ids: UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type}:{id}:{user}:"""

from __future__ import annotations

from dataclasses import dataclass

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure


@dataclass(frozen=True)
class Upid:
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str


def parse_upid(upid: str) -> Upid:
    parts = upid.split(":")
    if len(parts) != 9 or parts[0] != "UPID" or parts[8] != "" or not parts[1]:
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "not a Proxmox task id (UPID:node:pid:pstart:starttime:"
                             "type:id:user:)")
    try:
        pid, pstart, starttime = (int(part, 16) for part in parts[2:5])
    except ValueError:
        raise ServiceFailure(
            ErrorCode.INVALID_ARGUMENT, "the task id's pid, pstart and starttime must be hex"
        ) from None
    return Upid(node=parts[1], pid=pid, pstart=pstart, starttime=starttime, type=parts[5], id=parts[6],
                user=parts[7])
