"""Talking to the api-worker over NATS as the gateway does, and to the simulator directly for comparison."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope, decode_error
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_contracts.subjects import ERROR_CODE_HEADER, ERROR_HEADER, ApiOp, api_subject

from tests.support.procs import Proc, start_process, wait_until
from tests.support.sim import SimInfo

WORKER = str(Path(sys.executable).parent / "proxmox-mcp-api-worker")
CALLER = Caller(token_id="api-test", scope=Scope.ADMIN)


def start_api_worker(config_path: Path, workdir: Path, name: str, nats_url: str, **env: str) -> Proc:
    proc = start_process(name, [WORKER], workdir, env={
        "NATS_URL": nats_url, "PMCP_CONFIG": str(config_path), "LOG_LEVEL": "INFO", **env,
    })
    wait_until(lambda: '"worker ready"' in proc.log_text(), timeout=30, what=f"{name} to be ready", proc=proc)
    return proc


def envelope(cluster: str, op: ApiOp, args: dict[str, Any], *, timeout: float = 15.0, **extra: Any) -> RequestEnvelope:
    return RequestEnvelope(op=op.value, cluster=cluster, args=args, deadline=time.time() + timeout, caller=CALLER,
                           **extra)


async def send(nc: NatsClient, request: RequestEnvelope, *, wait: float | None = None) -> dict[str, Any] | ErrorInfo:
    """The worker's result, or the ErrorInfo of its micro error reply."""
    op = ApiOp(request.op)
    budget = wait if wait is not None else max(request.remaining(), 0) + 10
    reply = await nc.request(api_subject(request.cluster, op), request.model_dump_json().encode(), timeout=budget)
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        return decode_error(headers.get(ERROR_CODE_HEADER), headers.get(ERROR_HEADER), reply.data)
    return ReplyEnvelope.model_validate_json(reply.data).result


async def call(nc: NatsClient, cluster: str, op: ApiOp, args: dict[str, Any] | None = None,
               *, timeout: float = 15.0) -> dict[str, Any] | ErrorInfo:
    return await send(nc, envelope(cluster, op, args or {}, timeout=timeout))


async def ok(nc: NatsClient, cluster: str, op: ApiOp, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    result = await call(nc, cluster, op, args, **kw)
    assert isinstance(result, dict), f"expected a result, got {result!r}"
    return result


async def error(nc: NatsClient, cluster: str, op: ApiOp, args: dict[str, Any] | None = None, **kw: Any) -> ErrorInfo:
    result = await call(nc, cluster, op, args, **kw)
    assert isinstance(result, ErrorInfo), f"expected an error, got {result!r}"
    return result


async def wait_for_task(nc: NatsClient, cluster: str, upid: str, *, timeout: float = 20.0) -> t.TaskResult:
    deadline = time.monotonic() + timeout
    while True:
        task = t.TaskResult.model_validate(await ok(nc, cluster, ApiOp.TASK_STATUS, {"upid": upid, "log_lines": 20}))
        if task.status == "stopped":
            return task
        assert time.monotonic() < deadline, f"task {upid} still running after {timeout}s"
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class SimClient:
    """Reads the simulator's state directly (admin token, pinned certificate): the reference answers."""

    def __init__(self, sim: SimInfo) -> None:
        self.base = f"https://{sim.host}:{sim.api_port}/api2/json"
        self.header = sim.admin_token["header"]
        pin = sim.fingerprint.replace(":", "").lower()
        self._http = urllib3.PoolManager(cert_reqs="CERT_NONE", assert_fingerprint=pin, timeout=10.0)

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        response = self._http.request("GET", self.base + path + query, headers={"Authorization": self.header})
        assert response.status == 200, f"GET {path}: {response.status} {response.reason}"
        return json.loads(response.data)["data"]

    def close(self) -> None:
        self._http.clear()
