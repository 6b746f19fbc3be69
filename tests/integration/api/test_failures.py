"""Failure paths: Proxmox errors and slowness (simulator fault injection), a stopped simulator, deadlines,
and SIGTERM draining an in-flight call. Nothing hangs; bounds are generous."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from proxmox_mcp_contracts.errors import ErrorCode, ErrorInfo
from proxmox_mcp_contracts.subjects import ApiOp, api_subject

from tests.integration.api.conftest import ApiStack, _cluster, write_config
from tests.integration.api.helpers import envelope, error, ok, send, start_api_worker
from tests.support.procs import wait_until
from tests.support.sim import SimInfo, clear_sim_faults, sim_faults


@pytest.fixture
def faults(api_stack: ApiStack) -> Iterator[SimInfo]:
    """The simulator, with its injected faults cleared after the test whatever happens."""
    try:
        yield api_stack.sim
    finally:
        clear_sim_faults(api_stack.sim)


async def test_a_proxmox_server_error_is_an_upstream_error(
    api_stack: ApiStack, faults: SimInfo, nc: NatsClient
) -> None:
    sim_faults(faults, [{"path": "/cluster/resources$", "error_rate": 1.0, "status": 500,
                         "message": "simulated failure"}])
    failure = await error(nc, api_stack["pinned"], ApiOp.LIST_VMS)
    assert failure.code is ErrorCode.UPSTREAM_ERROR and "simulated failure" in failure.message
    assert failure.details["status"] == 500


async def test_proxmox_slower_than_the_deadline_is_a_prompt_timeout(
    api_stack: ApiStack, faults: SimInfo, nc: NatsClient
) -> None:
    sim_faults(faults, [{"path": "/cluster/resources$", "latency_ms": 8000}])
    started = time.monotonic()
    failure = await send(nc, envelope(api_stack["pinned"], ApiOp.LIST_VMS, {}, timeout=1.5))
    elapsed = time.monotonic() - started
    assert isinstance(failure, ErrorInfo) and failure.code is ErrorCode.TIMEOUT, failure
    assert elapsed < 5, f"a 1.5 s deadline took {elapsed:.1f} s"


async def test_proxmox_slower_than_the_configured_timeout_is_a_timeout(
    api_stack: ApiStack, faults: SimInfo, nc: NatsClient, tmp_path: Path
) -> None:
    name = f"api-short-{secrets.token_hex(3)}"
    config = write_config(tmp_path / "short.toml", [_cluster(name, api_stack.sim, timeout=1.0)])
    worker = start_api_worker(config, tmp_path, "api-worker-short", api_stack.nats_url)
    try:
        sim_faults(faults, [{"path": "/version$", "latency_ms": 8000}])
        started = time.monotonic()
        failure = await error(nc, name, ApiOp.PROXMOX_API, {"path": "/version"}, timeout=20)
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
    assert failure.code is ErrorCode.TIMEOUT and "within 1s" in failure.message
    assert elapsed < 6, f"a 1 s API timeout took {elapsed:.1f} s"


async def test_a_call_whose_deadline_already_passed_is_a_timeout(api_stack: ApiStack, nc: NatsClient) -> None:
    late = envelope(api_stack["pinned"], ApiOp.LIST_VMS, {})
    late.deadline = time.time() - 1
    failure = await send(nc, late, wait=10)
    assert isinstance(failure, ErrorInfo) and failure.code is ErrorCode.TIMEOUT


async def test_a_stopped_simulator_is_unavailable_and_retryable(api_stack: ApiStack, nc: NatsClient) -> None:
    assert (await ok(nc, api_stack["spare"], ApiOp.LIST_VMS))["count"] > 0
    api_stack.spare.proc.stop()
    started = time.monotonic()
    failure = await error(nc, api_stack["spare"], ApiOp.LIST_VMS)
    assert failure.code is ErrorCode.UNAVAILABLE and failure.retryable
    assert time.monotonic() - started < 10
    probe = await ok(nc, api_stack["spare"], ApiOp.PROBE)
    assert probe["ok"] is False and probe["detail"].startswith("unavailable:")


async def test_sigterm_lets_an_in_flight_call_finish(
    api_stack: ApiStack, faults: SimInfo, nc: NatsClient, tmp_path: Path
) -> None:
    name = f"api-drain-{secrets.token_hex(3)}"
    config = write_config(tmp_path / "drain.toml", [_cluster(name, api_stack.sim)])
    worker = start_api_worker(config, tmp_path, "api-worker-drain", api_stack.nats_url, PMCP_DRAIN_TIMEOUT="10")
    try:
        sim_faults(faults, [{"path": "/version$", "latency_ms": 1500}])
        beat_subject = f"pmcp.hb.apitest.{secrets.token_hex(4)}"
        beats = await nc.subscribe(beat_subject)
        request = envelope(name, ApiOp.PROXMOX_API, {"path": "/version"}, timeout=15,
                           heartbeat_subject=beat_subject, heartbeat_interval=0.05)
        pending = asyncio.create_task(send(nc, request))
        await beats.next_msg(timeout=10)  # the worker is on the call
        worker.popen.send_signal(signal.SIGTERM)
        result = await asyncio.wait_for(pending, timeout=15)
        assert isinstance(result, dict) and result["data"]["version"], result
        wait_until(lambda: not worker.alive(), timeout=15, what="the drained worker to exit")
        assert worker.popen.returncode == 0
        with pytest.raises(NoRespondersError):
            await nc.request(api_subject(name, ApiOp.PROBE), envelope(name, ApiOp.PROBE, {}).model_dump_json().encode(),
                             timeout=2)
    finally:
        worker.stop()
