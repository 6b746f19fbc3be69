"""Scaffolding for a NATS micro worker: envelope decoding, deadlines, error replies, graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.micro.request import Request
from nats.micro.service import Service, ServiceConfig
from proxmox_mcp_contracts.envelope import ReplyEnvelope, RequestEnvelope, Scope, encode_error
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo, ServiceFailure
from proxmox_mcp_contracts.subjects import QUEUE_GROUP
from proxmox_mcp_contracts.trace import TRACEPARENT, trace_id_of, valid_traceparent
from pydantic import ValidationError

from proxmox_mcp_runtime.control.worker_gate import WorkerFreezeGate
from proxmox_mcp_runtime.logs import bind_log_context
from proxmox_mcp_runtime.nats_typed import connect
from proxmox_mcp_runtime.redact import redact_value, sanitize_error
from proxmox_mcp_runtime.service_stats import EndpointCounts, start_measured_service
from proxmox_mcp_runtime.validation_errors import describe_validation_error

log = logging.getLogger(__name__)

Handler = Callable[[RequestEnvelope], Awaitable[dict[str, Any]]]
Observer = Callable[[str, str, float], None]
"""Called after each request with (op, outcome code or "ok", seconds), e.g. metrics.worker.worker_observer."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    """Micro endpoint name ([A-Za-z0-9_-]); unique within the service."""
    subject: str
    handler: Handler
    op: str


@dataclass
class WorkerRuntime:
    """Runs handlers for micro requests concurrently and waits for them on shutdown."""

    service_name: str
    version: str
    endpoints: Sequence[Endpoint]
    description: str = ""
    observer: Observer | None = None
    freeze: WorkerFreezeGate | None = None
    """The freeze switch: every request above read is checked against it before its handler runs."""
    _inflight: set[asyncio.Task[None]] = field(default_factory=set[asyncio.Task[None]])
    _counts: dict[str, EndpointCounts] = field(init=False)
    _service: Service | None = None
    _nc: NatsClient | None = None

    def __post_init__(self) -> None:
        names = [endpoint.name for endpoint in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique within {self.service_name}: {sorted(names)}")
        self._counts = {name: EndpointCounts() for name in names}

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def nats_client(self) -> NatsClient | None:
        return self._nc

    async def start(self, nc: NatsClient) -> Service:
        self._nc = nc
        if self.freeze is not None:
            await self.freeze.start(nc)
        config = ServiceConfig(name=self.service_name, version=self.version,
                               description=self.description or None, queue_group=QUEUE_GROUP)
        svc = await start_measured_service(nc, config, self._counts)
        for endpoint in self.endpoints:
            await svc.add_endpoint(
                name=endpoint.name,
                subject=endpoint.subject,
                handler=self._dispatcher(endpoint),
                metadata={"op": endpoint.op},
            )
        self._service = svc
        return svc

    def _dispatcher(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[None]]:
        # nats.micro awaits the handler inline, which would serialize every call on an
        # endpoint: hand each request to its own task instead.
        counts = self._counts[endpoint.name]

        async def dispatch(request: Request) -> None:
            counts.arrived()
            task = asyncio.create_task(self._serve(endpoint, request, counts, time.perf_counter_ns()))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        return dispatch

    async def _serve(self, endpoint: Endpoint, request: Request, counts: EndpointCounts, arrived_ns: int) -> None:
        outcome = "ok"
        heartbeat: asyncio.Task[None] | None = None
        hide_internals = True  # until the envelope says the caller is an admin
        try:
            envelope = RequestEnvelope.model_validate_json(request.data)
            hide_internals = envelope.caller.scope is not Scope.ADMIN
            traceparent = envelope.trace.get(TRACEPARENT)
            bind_log_context(request_id=envelope.request_id,  # this request's own task: no reset needed
                             trace_id=trace_id_of(traceparent) if valid_traceparent(traceparent) else None)
            if envelope.heartbeat_subject and self._nc is not None:
                heartbeat = asyncio.create_task(
                    _beat(self._nc, envelope.heartbeat_subject, envelope.heartbeat_interval)
                )
            left = envelope.require_time_left()
            if self.freeze is not None:
                await self.freeze.check(endpoint.op, envelope.args)
                left = envelope.require_time_left()
            try:
                result = await asyncio.wait_for(endpoint.handler(envelope), timeout=left)
            except TimeoutError:
                raise ServiceFailure(
                    ErrorCode.TIMEOUT, f"{endpoint.op} did not finish before the call's deadline"
                ) from None
            reply = ReplyEnvelope(request_id=envelope.request_id, result=redact_value(result))
            await request.respond(reply.model_dump_json().encode())
        except ValidationError as exc:
            outcome = ErrorCode.INVALID_ARGUMENT.value
            await _respond_error(request, ErrorInfo(
                code=ErrorCode.INVALID_ARGUMENT,
                message=f"malformed request envelope: {describe_validation_error(exc, whole='envelope')}",
            ))
        except ServiceFailure as exc:
            outcome = exc.code.value
            # Refusals of the caller's own input (policy, arguments) may quote it; the rest may quote the hosts.
            about_input = exc.code in (ErrorCode.POLICY_DENIED, ErrorCode.INVALID_ARGUMENT)
            message = sanitize_error(exc.info.message, hide_internals=hide_internals and not about_input)
            await _respond_error(request, exc.info.model_copy(update={"message": message}))
        except asyncio.CancelledError:
            outcome = ErrorCode.UNAVAILABLE.value  # cut off by a drain that ran out of time: no reply went out
            raise
        except Exception as exc:
            outcome = ErrorCode.INTERNAL.value
            log.error("handler failed", extra={"op": endpoint.op, "error_type": type(exc).__name__}, exc_info=False)
            await _respond_error(request, ErrorInfo(
                code=ErrorCode.INTERNAL, message=f"the worker failed while running {endpoint.op}"
            ))
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            # One measurement, from arrival to reply, for both STATS and the observer (the worker's metrics).
            elapsed_ns = time.perf_counter_ns() - arrived_ns
            counts.finished_with(outcome, elapsed_ns)
            seconds = elapsed_ns / 1e9
            if outcome != "ok":
                log.info("request failed", extra={"op": endpoint.op, "code": outcome,
                                                  "duration_ms": round(seconds * 1000, 2)})
            if self.observer is not None:
                self.observer(endpoint.op, outcome, seconds)

    async def drain(self, timeout: float) -> None:
        """Stop taking requests, then let the ones under way finish (up to timeout seconds)."""
        if self._service is not None:
            await self._service.stop()
        if self._inflight:
            log.info("draining in-flight calls", extra={"inflight": len(self._inflight)})
            _, pending = await asyncio.wait(set(self._inflight), timeout=timeout)
            for task in pending:
                task.cancel()
        if self.freeze is not None:
            await self.freeze.stop()


async def _beat(nc: NatsClient, subject: str, interval: float) -> None:
    """Tell the waiting gateway this worker is still on the call, so it can tell slow from dead."""
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):
            await nc.publish(subject, b"")


async def _respond_error(request: Request, info: ErrorInfo) -> None:
    with contextlib.suppress(Exception):
        await request.respond_error(info.code.value, info.message.splitlines()[0][:200], data=encode_error(info))


def nats_servers(url: str) -> list[str]:
    """NATS_URL may name every node of a cluster, comma separated: the client fails over between them."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("the NATS URL is empty")
    return servers


async def connect_nats(
    url: str, name: str, *, max_reconnect_wait: float = 2.0, ping_interval: int = 2, max_pings_out: int = 2
) -> NatsClient:
    """Connect with endless reconnects: a restarted NATS server must not end a worker.

    `url` may list several servers (comma separated). A node that dies closes the socket and the client moves
    to another at once; a node cut off by the network answers nothing, so pings (every `ping_interval` seconds,
    stale after `max_pings_out` unanswered: ~6 s) move the client off it, instead of nats-py's 4-minute default.
    """

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", extra={"error_type": type(exc).__name__})

    return await connect(
        servers=nats_servers(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=max_reconnect_wait,
        allow_reconnect=True,
        error_cb=on_error,
        connect_timeout=5,
        ping_interval=ping_interval,
        max_outstanding_pings=max_pings_out,
    )


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def serve_until_stopped(
    nats_url: str,
    runtime: WorkerRuntime,
    *,
    drain_timeout: float = 30.0,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Connect, serve until SIGTERM/SIGINT (or `stop`), then drain and close."""
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    nc = await connect_nats(nats_url, runtime.service_name)
    try:
        await runtime.start(nc)
        await nc.flush()  # a round trip: the server has every subscription before we say ready
        log.info("worker ready", extra={"service": runtime.service_name, "endpoints": len(runtime.endpoints)})
        if on_ready is not None:
            on_ready()
        await stop.wait()
        log.info("stopping: draining")
        await runtime.drain(drain_timeout)
    finally:
        # Bounded: with NATS already gone, drain() would wait on reconnects forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), timeout=2)
