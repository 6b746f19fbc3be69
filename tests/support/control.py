"""The freeze switch from a test's side: requests sent straight to a worker's NATS subject (as anyone with NATS
access could), and the relay of a thawed gateway for tests that drive workers without a gateway (in local mode a
worker learns the switch from the gateway's relay, and refuses everything above read while it hears none)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.control import FreezeState
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope, decode_error
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_contracts.subjects import (
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    ApiOp,
    SshOp,
    WorkerKind,
    api_subject,
    ssh_subject,
)
from proxmox_mcp_runtime.control import FreezeStatus
from proxmox_mcp_runtime.control.relay import FreezeRelay

ADMIN = Caller(token_id="straight-to-nats", scope=Scope.ADMIN, command_profile="admin")
THAWED = FreezeStatus(state=FreezeState(), known=True, revision=0, age=0.0)


async def direct(nc: NatsClient, kind: WorkerKind, op: SshOp | ApiOp, args: dict[str, Any], *,
                 cluster: str = "default", caller: Caller = ADMIN, timeout: float = 10.0) -> dict[str, Any] | ErrorInfo:
    """A request on the worker's own subject, past every gateway: its result, or the ErrorInfo it replied."""
    envelope = RequestEnvelope(op=op.value, cluster=cluster, args=args, deadline=time.time() + timeout, caller=caller)
    subject = ssh_subject(cluster, SshOp(op)) if kind is WorkerKind.SSH else api_subject(cluster, ApiOp(op))
    reply = await nc.request(subject, envelope.model_dump_json().encode(), timeout=timeout + 2)
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        return decode_error(headers.get(ERROR_CODE_HEADER), headers.get(ERROR_HEADER), reply.data)
    return ReplyEnvelope.model_validate_json(reply.data).result


@contextlib.contextmanager
def thawed_relay(nats_url: str, interval: float = 0.5) -> Iterator[None]:
    """The runtime's own relay, telling every worker on this NATS that the switch is off (known, never frozen),
    from a thread with its own event loop, for the block."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    failures: list[BaseException] = []

    async def relay() -> None:
        nc = NatsClient()
        await nc.connect(servers=[nats_url], name="test-thawed-relay")
        async def thawed() -> FreezeStatus:
            return THAWED

        sender = FreezeRelay(lambda: nc, thawed)
        try:
            while not stop.is_set():
                await sender.publish(THAWED)
                started.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await stop.wait()
        finally:
            await sender.close()
            await nc.close()

    def run() -> None:
        try:
            loop.run_until_complete(relay())
        except BaseException as exc:
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="thawed-relay", daemon=True)
    thread.start()
    started.wait(timeout=15)
    if failures or not started.is_set():
        raise RuntimeError(f"the thawed relay did not start: {failures[0] if failures else 'timeout'}")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
