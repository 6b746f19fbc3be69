"""The gateway's side of NATS: one request per tool call, with deadlines, heartbeats and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, decode_error
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.subjects import (
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    ApiOp,
    SshOp,
    WorkerKind,
    api_subject,
    heartbeat_subject,
    heartbeat_wildcard,
    service_name,
    ssh_subject,
)
from proxmox_mcp_contracts.trace import TRACEPARENT
from proxmox_mcp_runtime.discovery import gather_timed
from proxmox_mcp_runtime.futures import retrieve_outcome
from proxmox_mcp_runtime.nats_typed import subscribe
from proxmox_mcp_runtime.worker import connect_nats

log = logging.getLogger(__name__)

RequestObserver = Callable[[str, str, float], None]
"""(worker kind, outcome, seconds) after each NATS request."""


@dataclass
class BusSettings:
    nats_url: str
    heartbeat_interval: float = 1.0
    """How often workers report they are still on a call; 2.5x this without news means the worker died."""
    gateway_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


class WorkerBus:
    """Sends tool calls to workers. Reads may be retried once on 'no responders'; writes never are."""

    def __init__(self, settings: BusSettings, observer: RequestObserver | None = None) -> None:
        self.settings = settings
        self._observer = observer
        self._nc: NatsClient | None = None
        self._beats: dict[str, asyncio.Event] = {}

    @property
    def nats_client(self) -> NatsClient | None:
        return self._nc

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect(self) -> None:
        self._nc = await connect_nats(self.settings.nats_url, f"proxmox-mcp-gateway-{self.settings.gateway_id}")
        await subscribe(self._nc, heartbeat_wildcard(self.settings.gateway_id), cb=self._on_heartbeat)

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
            self._nc = None

    async def _on_heartbeat(self, msg: Msg) -> None:
        request_id = msg.subject.rsplit(".", 1)[-1]
        event = self._beats.get(request_id)
        if event is not None:
            event.set()

    def _client(self) -> NatsClient:
        if self._nc is None or self._nc.is_closed:
            raise ServiceFailure(ErrorCode.UNAVAILABLE, "the gateway is not connected to NATS", retryable=True)
        if not self._nc.is_connected:
            raise ServiceFailure(ErrorCode.UNAVAILABLE, "the gateway is reconnecting to NATS", retryable=True)
        return self._nc

    async def call(
        self,
        kind: WorkerKind,
        op: SshOp | ApiOp,
        args: dict[str, Any],
        *,
        cluster: str,
        caller: Caller,
        deadline: float,
        idempotent: bool,
        request_id: str | None = None,
        traceparent: str | None = None,
    ) -> dict[str, Any]:
        """traceparent: the trace context of the call this request serves, sent to the worker in the envelope."""
        subject = ssh_subject(cluster, op) if kind is WorkerKind.SSH else api_subject(cluster, op)  # type: ignore[arg-type]
        envelope = RequestEnvelope(op=op.value, cluster=cluster, args=args, deadline=deadline, caller=caller,
                                   trace={TRACEPARENT: traceparent} if traceparent else {})
        if request_id is not None:
            envelope.request_id = request_id
        started = time.perf_counter()
        outcome = "ok"
        try:
            attempts = 2 if idempotent else 1
            for attempt in range(attempts):
                try:
                    return await self._request_once(kind, subject, envelope, idempotent=idempotent)
                except nats.errors.NoRespondersError:
                    if attempt + 1 < attempts:
                        await asyncio.sleep(0.05)
                        continue
                    raise ServiceFailure(
                        ErrorCode.UNAVAILABLE,
                        f"no {service_name(kind)} is serving cluster {cluster!r}; start one or check NATS",
                        retryable=True,
                    ) from None
            raise AssertionError("unreachable")
        except ServiceFailure as exc:
            outcome = exc.code.value
            raise
        finally:
            if self._observer is not None:
                self._observer(kind.value, outcome, time.perf_counter() - started)

    async def _request_once(
        self, kind: WorkerKind, subject: str, envelope: RequestEnvelope, *, idempotent: bool
    ) -> dict[str, Any]:
        nc = self._client()
        interval = self.settings.heartbeat_interval
        envelope.heartbeat_subject = heartbeat_subject(self.settings.gateway_id, envelope.request_id)
        envelope.heartbeat_interval = interval
        beat = asyncio.Event()
        self._beats[envelope.request_id] = beat
        timeout = envelope.remaining()
        if timeout <= 0:
            raise ServiceFailure(ErrorCode.TIMEOUT, "the call's deadline passed before it was sent")
        reconnects_before = nc.stats["reconnects"]

        async def link_lost(probe: bool) -> bool:
            if not nc.is_connected or nc.stats["reconnects"] != reconnects_before:
                return True
            return probe and not await self._echoes(nc, timeout=interval * 2.5)

        request = asyncio.ensure_future(nc.request(subject, envelope.model_dump_json().encode(), timeout=timeout))
        try:
            msg = await self._await_with_liveness(request, beat, interval, kind, idempotent, link_lost)
        finally:
            self._beats.pop(envelope.request_id, None)
            if not request.done():
                request.cancel()
                # A cancel that meets the request's own timeout ends it with TimeoutError (asyncio.wait_for in 3.11):
                # taken here, or asyncio logs "Task exception was never retrieved" for a call already answered.
                request.add_done_callback(retrieve_outcome)
        return _decode_reply(msg)

    async def _await_with_liveness(
        self,
        request: asyncio.Future[Msg],
        beat: asyncio.Event,
        interval: float,
        kind: WorkerKind,
        idempotent: bool,
        link_lost: Callable[[bool], Awaitable[bool]],
    ) -> Msg:
        """The reply, or a failure naming what failed: the deadline; the gateway's own NATS connection (it dropped
        since the request went out, or no longer carries a message to itself: the reply and the heartbeats may be
        lost with it); or the worker (its heartbeats stopped while the gateway's connection works: it died or lost
        its own NATS connection)."""
        silence_limit = interval * 2.5
        while True:
            done, _ = await asyncio.wait({request}, timeout=silence_limit)
            if done:
                try:
                    return request.result()
                except (nats.errors.TimeoutError, TimeoutError):
                    if await link_lost(False):
                        raise self._lost_link(idempotent) from None
                    raise ServiceFailure(
                        ErrorCode.TIMEOUT,
                        f"the {service_name(kind)} did not answer before the call's deadline"
                        + ("" if idempotent else OUTCOME_UNKNOWN),
                    ) from None
                except nats.errors.NoRespondersError:
                    raise
                except nats.errors.Error:
                    raise self._lost_link(idempotent) from None
            if beat.is_set():
                beat.clear()
                continue
            if await link_lost(True):
                raise self._lost_link(idempotent)
            raise _lost_call(
                f"the {service_name(kind)} handling this call stopped responding (it died or lost its NATS "
                "connection)", idempotent,
            )

    def _lost_link(self, idempotent: bool) -> ServiceFailure:
        state = "it is reconnecting" if not self.connected else "it has reconnected"
        return _lost_call(f"the gateway's connection to NATS failed during the call ({state})", idempotent)

    async def _echoes(self, nc: NatsClient, timeout: float) -> bool:
        """Whether a message from the gateway to itself still makes the round trip through its NATS server (a
        cut-off server looks connected until pings time out). Not nc.flush(timeout): nats-py cancels the PONG's
        future on timeout and then fails its read loop when the late PONG arrives."""
        token = "echo-" + uuid.uuid4().hex
        echoed = asyncio.Event()
        self._beats[token] = echoed
        try:
            await nc.publish(heartbeat_subject(self.settings.gateway_id, token), b"")
            async with asyncio.timeout(timeout):
                await echoed.wait()
            return True
        except (TimeoutError, nats.errors.Error):
            return False
        finally:
            self._beats.pop(token, None)

    async def ping_services(self, kind: WorkerKind, timeout: float = 0.5) -> tuple[list[dict[str, Any]],
                                                                                  float | None]:
        """`$SRV.PING.<name>`: every running instance of a worker kind answers once; also the seconds until the
        first answered (None: none did)."""
        return await gather_timed(self._client(), f"$SRV.PING.{service_name(kind)}", timeout)

    async def any_service(self, kind: WorkerKind, timeout: float = 0.5) -> bool:
        try:
            await self._client().request(f"$SRV.PING.{service_name(kind)}", b"", timeout=timeout)
        except (ServiceFailure, nats.errors.Error, TimeoutError):
            return False
        return True



OUTCOME_UNKNOWN = "; the outcome of this non-idempotent call is unknown, check before retrying"


def _lost_call(what: str, idempotent: bool) -> ServiceFailure:
    """A call whose reply can no longer come: a read may simply be sent again, a write may have happened."""
    if idempotent:
        return ServiceFailure(ErrorCode.UNAVAILABLE, what + "; this read is safe to retry", retryable=True)
    return ServiceFailure(ErrorCode.UNAVAILABLE, what + OUTCOME_UNKNOWN, retryable=False)


def _decode_reply(msg: Msg) -> dict[str, Any]:
    headers = msg.headers or {}
    if ERROR_CODE_HEADER in headers:
        info = decode_error(headers.get(ERROR_CODE_HEADER), headers.get(ERROR_HEADER), msg.data)
        raise ServiceFailure(info.code, info.message, retryable=info.retryable, details=info.details)
    try:
        return ReplyEnvelope.model_validate_json(msg.data).result
    except ValueError:
        raise ServiceFailure(ErrorCode.INTERNAL, "a worker sent a reply the gateway cannot read") from None

