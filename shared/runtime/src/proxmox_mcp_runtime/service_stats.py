"""`$SRV.STATS` that tell what a worker did.

nats.micro counts an endpoint's errors and processing time around its handler, but our handler only starts a
task: awaiting the work inline would serve one request per endpoint at a time, and errors raised into nats.micro
would lose our JSON error bodies. Left alone, STATS would report no errors and microseconds of work whatever
happened. So the dispatcher counts here, with the same measurement the worker's own Prometheus metrics use, and
the service reports these counts in its STATS replies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from nats.micro.service import Endpoint, Service, ServiceConfig, ServiceStats

OK = "ok"


@dataclass
class EndpointCounts:
    """One endpoint's request counts, in nats.micro's units (nanoseconds)."""

    requests: int = 0
    """Requests taken, counted on arrival as nats.micro does (so a call still running is already counted)."""
    finished: int = 0
    errors: int = 0
    """Requests answered with an error reply."""
    processing_ns: int = 0
    """Total time from arrival to reply of the finished requests."""
    last_error: str | None = None
    """The error code of the last failed request. Only the code: the description may quote the caller's input,
    and every NATS client can read STATS."""

    def arrived(self) -> None:
        self.requests += 1

    def finished_with(self, outcome: str, nanoseconds: int) -> None:
        self.finished += 1
        self.processing_ns += max(nanoseconds, 0)
        if outcome != OK:
            self.errors += 1
            self.last_error = outcome

    @property
    def average_ns(self) -> int:
        return self.processing_ns // self.finished if self.finished else 0


class MeasuredService(Service):
    """A nats.micro service whose STATS replies carry the dispatcher's counts (by endpoint name) instead of the
    library's."""

    def __init__(self, client: NatsClient, config: ServiceConfig, counts: Mapping[str, EndpointCounts]) -> None:
        super().__init__(client, config)
        self._counts = counts

    def stats(self) -> ServiceStats:
        stats = super().stats()
        for endpoint in stats.endpoints:
            counts = self._counts.get(endpoint.name)
            if counts is None:
                continue
            endpoint.num_requests = counts.requests
            endpoint.num_errors = counts.errors
            endpoint.processing_time = counts.processing_ns
            endpoint.average_processing_time = counts.average_ns
            endpoint.last_error = counts.last_error
        return stats

    async def stop(self) -> None:
        """Stop taking requests without dropping one. nats.micro's stop() unsubscribes, which discards the
        requests the server has already routed to this instance (in its socket or its queue) and whose callers
        would then wait for a worker that never answers. Draining instead tells the server to stop routing here,
        waits a round trip for what it already sent, and hands each of those to the dispatcher."""
        if self._stopped.is_set():
            return
        if not self._client.is_connected:  # nothing can arrive now, and a drain's round trip would wait
            await super().stop()
            return
        # nats.micro keeps these untyped: name what they hold.
        endpoints = cast("list[Endpoint]", self._endpoints)  # pyright: ignore[reportUnknownMemberType]
        own = cast("dict[str, Subscription]", self._subscriptions)  # pyright: ignore[reportUnknownMemberType]
        subscriptions = [endpoint._subscription for endpoint in endpoints]  # pyright: ignore[reportPrivateUsage]
        for subscription in [*subscriptions, *own.values()]:
            if subscription is not None:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.drain()
        for endpoint in endpoints:
            endpoint._subscription = None  # pyright: ignore[reportPrivateUsage]
        self._endpoints = []
        self._subscriptions = {}
        self._stopped.set()


async def start_measured_service(client: NatsClient, config: ServiceConfig,
                                 counts: Mapping[str, EndpointCounts]) -> MeasuredService:
    """nats.micro's add_service, with our counts in STATS."""
    service = MeasuredService(client, config, counts)
    await service.start()
    return service
