"""`proxmox-mcp freeze|thaw --reason ...`: change the freeze switch where the gateways read it (PMCP_STATE=local:
the gateway's state file in PMCP_STATE_DIR; jetstream: the PMCP_CONTROL bucket on NATS_URL), then wait until a
gateway has written the change to the audit (a gateway records every change, whoever made it)."""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
import time

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.control import FREEZE_AUDITED_KEY
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.shared_state import shared_state_for
from proxmox_mcp_runtime.control import CONTROL_BUCKET, FreezeStatus, FreezeStoreError, change_freeze
from proxmox_mcp_runtime.kv import KeyValueStore, KvError
from proxmox_mcp_runtime.worker import nats_servers
from pydantic import ValidationError

CONNECT_TIMEOUT = 3.0


def cli_identity() -> str:
    """Who made the change, as the audit records it: the local user and host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"[:200]


async def _connect(url: str) -> NatsClient:
    async def quiet(_exc: Exception) -> None:
        return None

    nc = NatsClient()
    # wait_for: with nothing listening, nats-py keeps retrying the server list instead of giving up.
    await asyncio.wait_for(
        nc.connect(servers=nats_servers(url), name="proxmox-mcp-freeze", connect_timeout=int(CONNECT_TIMEOUT),
                   allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet),
        timeout=CONNECT_TIMEOUT + 1,
    )
    return nc


async def _audited(bucket: KeyValueStore, seq: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        entry = await bucket.get(FREEZE_AUDITED_KEY)
        if entry is not None and entry.value is not None and entry.value.isdigit() and int(entry.value) >= seq:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def _change(settings: GatewaySettings, frozen: bool, reason: str, wait: float) -> int:
    nc: NatsClient | None = None
    where = (str(settings.state_dir / "state.db") if settings.state == "local"
             else f"{CONTROL_BUCKET.name} on {settings.nats_url}")
    if settings.state == "jetstream":
        try:
            nc = await _connect(settings.nats_url)
        except Exception as exc:
            print(f"error: cannot connect to NATS at {settings.nats_url} ({type(exc).__name__}); nothing was changed",
                  file=sys.stderr)
            return 1
    state = shared_state_for(settings, lambda: nc)
    try:
        bucket = await state.bucket(CONTROL_BUCKET)
        new, revision = await change_freeze(bucket, frozen=frozen, by=cli_identity(), reason=reason, via="cli")
        report = FreezeStatus(state=new, known=True, revision=revision).report()
        verb = "frozen: every call above read scope is refused" if frozen else "thawed: calls above read work again"
        print(f"{verb} (by {report['by']} at {report['at']}: {report['reason']}; seq {report['seq']}, in {where})")
        if wait > 0:
            if await _audited(bucket, new.seq, wait):
                print("recorded in the audit by a gateway")
            else:
                print(f"not in the audit yet after {wait:g} s: no gateway has seen the change (is one running on "
                      "this state?); the first gateway that does records it", file=sys.stderr)
        return 0
    except (ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KvError, FreezeStoreError) as exc:
        print(f"error: the freeze switch could not be changed ({exc}); nothing was changed", file=sys.stderr)
        return 1
    finally:
        await state.close()
        if nc is not None:
            await nc.close()


def run_freeze_command(*, frozen: bool, reason: str, wait: float) -> int:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        from proxmox_mcp_gateway.server import refuse_start

        return refuse_start(exc)
    return asyncio.run(_change(settings, frozen, reason, wait))
