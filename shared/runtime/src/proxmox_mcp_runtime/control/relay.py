"""The gateway's relay of the freeze switch to the workers in local mode (PMCP_STATE=local): the state lives in
the gateway's own state file, which workers in other containers or under other users cannot read, so the
gateway publishes what it knows on core NATS every interval and on each change, and answers when a worker asks.
A worker that has heard nothing for stale_after seconds (no gateway, or NATS cut) treats the state as unknown."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from proxmox_mcp_contracts.control import FreezeBroadcast
from proxmox_mcp_contracts.subjects import CONTROL_FREEZE_REQUEST_SUBJECT, CONTROL_FREEZE_SUBJECT

from proxmox_mcp_runtime.control.guard import FreezeStatus

log = logging.getLogger(__name__)

NatsGetter = Callable[[], NatsClient | None]
CurrentStatus = Callable[[], Awaitable[FreezeStatus]]
"""The gateway's status, read once more first when it is not known (FreezeGuard.current)."""


def broadcast_of(status: FreezeStatus) -> bytes:
    """What a worker needs: the state only when this gateway knows it, and how old its confirmation is."""
    known = status.known and status.state is not None
    message = FreezeBroadcast(state=status.state if known else None, revision=status.revision,
                              age=(status.age or 0.0) if known else 0.0,
                              problem=None if known else (status.problem or "not confirmed recently"))
    return message.model_dump_json().encode()


class FreezeRelay:
    def __init__(self, nats: NatsGetter, current: CurrentStatus) -> None:
        self._nats = nats
        self._current = current
        self._subscription: Subscription | None = None
        self._subscribed_on: NatsClient | None = None

    async def publish(self, status: FreezeStatus) -> None:
        """Send the status to every worker (the guard calls this every interval and after each change)."""
        nc = self._nats()
        if nc is None or not nc.is_connected:
            return
        await self._answer_requests(nc)
        await nc.publish(CONTROL_FREEZE_SUBJECT, broadcast_of(status))

    async def _answer_requests(self, nc: NatsClient) -> None:
        if self._subscribed_on is nc:
            return

        async def answer(msg: Msg) -> None:
            with contextlib.suppress(Exception):
                await msg.respond(broadcast_of(await self._current()))

        await self.close()
        self._subscription = await nc.subscribe(  # pyright: ignore[reportUnknownMemberType]
            CONTROL_FREEZE_REQUEST_SUBJECT, cb=answer)
        self._subscribed_on = nc
        log.info("relaying the freeze switch to the workers on NATS")

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        self._subscription = None
        self._subscribed_on = None
