"""A worker's $SRV.STATS, read from a real nats-server, tell what its dispatcher did: requests on arrival, error
replies, and the time from arrival to reply (nats.micro alone would report no errors and microseconds)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.envelope import Caller, RequestEnvelope, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.worker import Endpoint, WorkerRuntime

from tests.support.nats import NatsServer

SERVICE = "stats-test-worker"
SLOW_SECONDS = 0.2


@dataclass
class Running:
    runtime: WorkerRuntime
    client: NatsClient
    release: asyncio.Event


async def _slow(_envelope: RequestEnvelope) -> dict[str, Any]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"slept": SLOW_SECONDS}


async def _refuse(_envelope: RequestEnvelope) -> dict[str, Any]:
    raise ServiceFailure(ErrorCode.POLICY_DENIED, "refused: cat /etc/pve/priv/secret-of-the-caller")


@pytest.fixture
async def running(nats_server: NatsServer) -> AsyncIterator[Running]:
    release = asyncio.Event()

    async def held(_envelope: RequestEnvelope) -> dict[str, Any]:
        await release.wait()
        return {}

    runtime = WorkerRuntime(service_name=SERVICE, version="1.0.0", endpoints=[
        Endpoint(name="default-slow", subject="test.stats.slow", handler=_slow, op="slow"),
        Endpoint(name="default-refuse", subject="test.stats.refuse", handler=_refuse, op="refuse"),
        Endpoint(name="default-held", subject="test.stats.held", handler=held, op="held"),
    ])
    served = await nats.connect(nats_server.url)
    client = await nats.connect(nats_server.url)
    try:
        await runtime.start(served)
        await served.flush()
        yield Running(runtime, client, release)
    finally:
        release.set()
        await runtime.drain(timeout=5)
        await client.close()
        await served.close()


def _envelope(op: str) -> bytes:
    return RequestEnvelope(op=op, deadline=time.time() + 10,
                           caller=Caller(token_id="t", scope=Scope.EXEC)).model_dump_json().encode()


async def _stats(client: NatsClient) -> dict[str, dict[str, Any]]:
    reply = await client.request(f"$SRV.STATS.{SERVICE}", b"", timeout=5)
    return {endpoint["name"]: endpoint for endpoint in json.loads(reply.data)["endpoints"]}


async def test_stats_count_error_replies_and_the_time_until_each_reply(running: Running) -> None:
    started = time.monotonic()
    for _ in range(3):
        reply = await running.client.request("test.stats.slow", _envelope("slow"), timeout=5)
        assert not (reply.headers or {}).get("Nats-Service-Error-Code")
    reply = await running.client.request("test.stats.refuse", _envelope("refuse"), timeout=5)
    assert (reply.headers or {}).get("Nats-Service-Error-Code") == "policy_denied"
    elapsed_ns = (time.monotonic() - started) * 1e9

    stats = await _stats(running.client)
    slow, refused = stats["default-slow"], stats["default-refuse"]
    assert (slow["num_requests"], slow["num_errors"]) == (3, 0)
    assert 3 * SLOW_SECONDS * 1e9 <= slow["processing_time"] <= elapsed_ns
    assert slow["average_processing_time"] == slow["processing_time"] // 3
    assert (refused["num_requests"], refused["num_errors"]) == (1, 1)
    assert refused["last_error"] == "policy_denied"  # the code only: the description quoted the caller's command
    assert 0 < refused["processing_time"] <= elapsed_ns


async def test_a_request_still_running_is_counted_but_has_no_time_or_error_yet(running: Running) -> None:
    pending = asyncio.ensure_future(running.client.request("test.stats.held", _envelope("held"), timeout=10))
    deadline = time.monotonic() + 20
    while (await _stats(running.client))["default-held"]["num_requests"] < 1:
        if pending.done():
            raise AssertionError(f"the held request ended before it was held: {pending.exception()!r}")
        assert time.monotonic() < deadline, "the held request never arrived"
        await asyncio.sleep(0.01)
    held = (await _stats(running.client))["default-held"]
    assert (held["num_errors"], held["processing_time"], held["average_processing_time"]) == (0, 0, 0)
    assert running.runtime.inflight == 1
    running.release.set()
    await pending
    held = (await _stats(running.client))["default-held"]
    assert held["num_requests"] == 1 and held["processing_time"] > 0


async def test_a_request_cut_off_by_a_drain_that_ran_out_of_time_is_reported_as_unavailable(
    nats_server: NatsServer,
) -> None:
    never = asyncio.Event()
    seen: list[tuple[str, str]] = []

    async def stuck(_envelope: RequestEnvelope) -> dict[str, Any]:
        await never.wait()
        return {}

    runtime = WorkerRuntime(service_name=SERVICE + "-drain", version="1.0.0",
                            endpoints=[Endpoint(name="default-stuck", subject="test.stats.stuck", handler=stuck,
                                                op="stuck")],
                            observer=lambda op, outcome, _seconds: seen.append((op, outcome)))
    served = await nats.connect(nats_server.url)
    client = await nats.connect(nats_server.url)
    try:
        await runtime.start(served)
        await served.flush()
        pending = asyncio.ensure_future(client.request("test.stats.stuck", _envelope("stuck"), timeout=5))
        deadline = time.monotonic() + 5
        while runtime.inflight < 1:
            assert time.monotonic() < deadline, "the request never arrived"
            await asyncio.sleep(0.01)
        await runtime.drain(timeout=0.1)
        while not seen:
            assert time.monotonic() < deadline, "the cut-off request was never reported"
            await asyncio.sleep(0.01)
        assert seen == [("stuck", "unavailable")]
        pending.cancel()
    finally:
        await client.close()
        await served.close()
