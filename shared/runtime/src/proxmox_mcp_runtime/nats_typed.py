"""nats-py calls whose signatures nats-py leaves partly untyped, given complete ones: the strict type check's one
boundary with that library."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


async def connect(servers: str | list[str], **options: Any) -> Client:
    """nats.connect. Its **options are untyped, and Client.connect's own annotations are narrower than what it
    takes: its timeouts and waits are int there, but go to asyncio as seconds, so fractions work."""
    return await nats.connect(servers, **options)  # pyright: ignore[reportUnknownMemberType]


async def subscribe(nc: Client, subject: str, *, cb: Callable[[Msg], Awaitable[None]] | None = None) -> Subscription:
    """Client.subscribe (nats-py types its unused-here `future` parameter as a bare asyncio.Future)."""
    return await nc.subscribe(subject, cb=cb)  # pyright: ignore[reportUnknownMemberType]
