"""nats-py calls whose signatures nats-py leaves partly untyped, given complete ones: the strict type check's one
boundary with that library (its `nats.connect(**options)` is avoided instead: `Client().connect` is typed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


async def subscribe(nc: Client, subject: str, *, cb: Callable[[Msg], Awaitable[None]] | None = None) -> Subscription:
    """Client.subscribe (nats-py types its unused-here `future` parameter as a bare asyncio.Future)."""
    return await nc.subscribe(subject, cb=cb)  # pyright: ignore[reportUnknownMemberType]
