"""`$SRV` discovery: every worker answers a discovery request, so collect replies until the window closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from nats.aio.client import Client


async def gather_replies(nc: Client, subject: str, timeout: float) -> list[dict[str, Any]]:
    """The JSON replies to one request on subject (e.g. `$SRV.INFO.<service>`) that arrive within timeout s."""
    inbox = nc.new_inbox()
    replies: list[dict[str, Any]] = []
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(subject, b"", reply=inbox)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for msg in sub.messages:
                    with contextlib.suppress(ValueError):
                        replies.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()
    return replies
