"""Stopping a gateway without failing a call: first say "not ready" and go on serving, then stop.

Behind a load balancer a gateway that simply stops listening still has calls sent to it on connections the
balancer keeps open, until the balancer notices. So SIGTERM only starts the drain: /health/ready answers 503
(the balancer's health check takes the gateway out of rotation) while calls that still arrive are served; when
the delay is over the server stops as before (no new connections, calls in flight finish within uvicorn's
graceful-shutdown timeout). A second SIGTERM or SIGINT stops at once.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._started: float | None = None

    @property
    def draining(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._started is None:
            self._started = time.monotonic()

    def over(self) -> bool:
        return self._started is not None and time.monotonic() - self._started >= self.delay


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the drain in front of its graceful shutdown."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.delay <= 0 or self.drain.draining:
            super().handle_exit(sig, frame)
            return
        # Runs in the signal handler: only flags here, the server's tick does the rest.
        self.drain.start()

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and not self._announced:
            self._announced = True
            log.info("draining: not ready, still serving", extra={"drain_delay_s": self.drain.delay})
        if self.drain.over() and not self.should_exit:
            log.info("drain over: stopping", extra={"drain_delay_s": self.drain.delay})
            self.should_exit = True
        return await super().on_tick(counter)
