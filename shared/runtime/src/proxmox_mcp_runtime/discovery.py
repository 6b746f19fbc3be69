"""`$SRV` discovery: every worker answers a discovery request, so collect replies until the window closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from nats.aio.client import Client

from proxmox_mcp_runtime.nats_typed import subscribe


async def gather_replies(nc: Client, subject: str, timeout: float) -> list[dict[str, Any]]:
    """The JSON replies to one request on subject (e.g. `$SRV.INFO.<service>`) that arrive within timeout s."""
    replies, _ = await gather_timed(nc, subject, timeout)
    return replies


async def gather_timed(nc: Client, subject: str, timeout: float) -> tuple[list[dict[str, Any]], float | None]:
    """gather_replies, plus how long the first reply took (seconds; None without a reply): the responsiveness
    of the fastest instance, which the window length says nothing about."""
    inbox = nc.new_inbox()
    replies: list[dict[str, Any]] = []
    first: float | None = None
    sub = await subscribe(nc, inbox)
    try:
        started = time.perf_counter()
        await nc.publish(subject, b"", reply=inbox)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for msg in sub.messages:
                    with contextlib.suppress(ValueError):
                        replies.append(json.loads(msg.data))
                        if first is None:
                            first = time.perf_counter() - started
    finally:
        await sub.unsubscribe()
    return replies, first
