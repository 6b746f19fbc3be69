"""What the gateway's JetStream writers share (audit stream, rate windows): the JetStream context of the gateway's
connection, "cannot answer now" errors, retrying through a leader election, streams created once."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api

T = TypeVar("T")

NatsSource = Callable[[], NatsClient | None]
"""The gateway's NATS connection as it is now (None before the first connect)."""

UNANSWERED: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,
)
"""What "JetStream cannot answer now" looks like to nats-py: no stream leader (an election under way: 'no
response from stream'), no connection, no quorum (timeouts), a 503 answer. A 503 that means something else
(a full rate window) must be turned into its own exception inside the attempt."""

STREAM_NAME_EXISTS = 10058
DUPLICATE_IN_PROCESS = 10158
"""JSStreamDuplicateMessageConflict, "duplicate message id is in process": the stream leader still holds an earlier
attempt with this message id, whose commit waits for a quorum (e.g. after a partition). Not an answer yet: the
same publish later gets the earlier attempt's acknowledgement."""


class NotConnected(Exception):
    """The gateway has no NATS connection (yet)."""


class JetStreamContexts:
    """One JetStreamContext per connection object (nats-py keeps the object across reconnects)."""

    def __init__(self, nats_client: NatsSource, timeout: float) -> None:
        self._nats_client = nats_client
        self._timeout = timeout
        self._cached: tuple[NatsClient, JetStreamContext] | None = None

    def get(self) -> JetStreamContext:
        nc = self._nats_client()
        if nc is None or nc.is_closed:
            raise NotConnected("the gateway is not connected to NATS")
        if self._cached is None or self._cached[0] is not nc:
            self._cached = (nc, JetStreamContext(nc, timeout=self._timeout))
        return self._cached[1]


async def until_answered(attempt: Callable[[float], Awaitable[T]], *, timeout: float) -> T:
    """attempt(seconds left) again and again while JetStream does not answer, for up to timeout seconds; then the
    last error (a nats TimeoutError when the leader was still busy with an earlier attempt). A stream whose leader
    died answers again once its replicas elected another (~5 s measured)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            return await attempt(max(0.05, min(2.0, deadline - time.monotonic())))
        except (*UNANSWERED, NotConnected):
            if time.monotonic() + delay >= deadline:
                raise
        except nats.js.errors.APIError as exc:
            if exc.err_code != DUPLICATE_IN_PROCESS:
                raise
            if time.monotonic() + delay >= deadline:
                raise nats.errors.TimeoutError from None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream when it does not exist; an existing one is left exactly as it is."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(config)  # pyright: ignore[reportUnknownMemberType]
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_NAME_EXISTS:  # another replica created it meanwhile: fine
                raise


_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def name_token(value: str) -> str:
    """value as one NATS subject token / KV key token when it can be one, else a digest of it (token ids from
    other issuers may hold dots, spaces or colons)."""
    return value if _SAFE.match(value) else "h" + hashlib.sha256(value.encode()).hexdigest()[:32]
