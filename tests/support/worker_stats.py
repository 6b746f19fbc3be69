"""What reached the workers, from their $SRV.STATS (nats.micro counts a request when it arrives)."""

from __future__ import annotations

import json
from typing import Any

import nats
from proxmox_mcp_contracts.subjects import API_SERVICE_NAME, SSH_SERVICE_NAME


async def worker_requests(nats_url: str, subject_suffix: str = "") -> int:
    """Requests the ssh-worker and the api-worker on this NATS (one of each, as the test stacks run them)
    received on subjects ending with subject_suffix; the gateway's health probes (`.probe`) are left out."""
    nc = await nats.connect(nats_url)
    try:
        total = 0
        for service in (SSH_SERVICE_NAME, API_SERVICE_NAME):
            reply = await nc.request(f"$SRV.STATS.{service}", b"", timeout=5)
            stats: dict[str, Any] = json.loads(reply.data)
            endpoints: list[dict[str, Any]] = stats.get("endpoints") or []
            total += sum(int(e.get("num_requests", 0)) for e in endpoints
                         if str(e.get("subject", "")).endswith(subject_suffix)
                         and not str(e.get("subject", "")).endswith(".probe"))
        return total
    finally:
        await nc.close()
