"""The gateways' shared state seen from a test: the token bucket and audit stream on a real NATS (JetStream),
REST calls with our own trace ids, and the CLI's `token`/`audit` commands as processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.audit_read import ReadFrom, stream_lines
from proxmox_mcp_gateway.state_names import TOKENS
from proxmox_mcp_gateway.token_kv import KvTokenStore
from proxmox_mcp_gateway.tokens import NewToken, TokenGrant
from proxmox_mcp_runtime.kv.jetstream import JetStreamState

from tests.support.services import GatewayProc

CLI = [sys.executable, "-m", "proxmox_mcp_cli.main"]


def jetstream_env(replicas: int, **extra: str) -> dict[str, str]:
    return {"PMCP_STATE": "jetstream", "PMCP_STATE_REPLICAS": str(replicas), **extra}


@contextlib.asynccontextmanager
async def connected(urls: Sequence[str] | str) -> AsyncIterator[NatsClient]:
    servers = [urls] if isinstance(urls, str) else list(urls)
    nc = await nats.connect(servers=servers, connect_timeout=2, reconnect_time_wait=0.2,
                            max_reconnect_attempts=-1, ping_interval=2, max_outstanding_pings=2)
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def token_store(nc: NatsClient, replicas: int) -> KvTokenStore:
    return KvTokenStore(await JetStreamState(nc, replicas=replicas, timeout=5.0).bucket(TOKENS))


async def new_token(store: KvTokenStore, name: str, scope: Scope = Scope.ADMIN) -> NewToken:
    return await store.create(TokenGrant.checked(name=name, scope=scope))


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def code(self) -> str:
        return str((self.body.get("error") or {}).get("code") or "ok")

    @property
    def message(self) -> str:
        return str((self.body.get("error") or {}).get("message") or "")


def trace_id(n: int) -> str:
    return f"{n:032x}"


def rest_call(base_url: str, token: str, tool: str, args: dict[str, Any] | None = None, *,
              trace: str | None = None, timeout: float = 30.0) -> Reply:
    headers = {"Authorization": f"Bearer {token}"}
    if trace is not None:
        headers["traceparent"] = f"00-{trace}-{'1' * 16}-01"
    response = httpx2.post(f"{base_url}/api/mcp/tools/call", json={"name": tool, "arguments": args or {}},
                           headers=headers, timeout=timeout)
    return Reply(response.status_code, response.json(), dict(response.headers))


def list_tools(gateway: GatewayProc, token: str) -> httpx2.Response:
    """POST /api/mcp/tools/list: authentication only, nothing audited or sent to a worker."""
    return httpx2.post(f"{gateway.base_url}/api/mcp/tools/list", headers={"Authorization": f"Bearer {token}"},
                       json={}, timeout=5)


def ready_body(gateway: GatewayProc) -> tuple[int, dict[str, Any]]:
    response = httpx2.get(f"{gateway.base_url}/health/ready", timeout=5)
    return response.status_code, response.json()


def wait_accepted(gateway: GatewayProc, token: str, *, accepted: bool, within: float) -> float:
    """Seconds until the gateway accepts (or refuses) the token; AssertionError past `within`."""
    started = time.monotonic()
    while True:
        status = list_tools(gateway, token).status_code
        if (status == 200) == accepted and status in (200, 401):
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"still {status} after {within}s"
        time.sleep(0.01)


async def audit_records(nc: NatsClient) -> list[dict[str, Any]]:
    js = JetStreamContext(nc, timeout=5.0)
    return [json.loads(line) async for line in stream_lines(js, ReadFrom(), follow=False)]


def cli(*args: str, env: dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass
class Outcome:
    trace: str
    target: str
    reply: Reply | None
    """None: no reply came (the connection broke: the gateway died under the call)."""
    started: float
    ended: float


class Load:
    """Threads calling tools over REST, each call with its own trace id, until stopped."""

    def __init__(self, targets: Sequence[tuple[str, str]], tokens: Sequence[str], *, tool: str = "list_vms",
                 args: dict[str, Any] | None = None, base: int = 0) -> None:
        """targets: (label, base URL); one thread per token, spread over the targets."""
        self.outcomes: list[Outcome] = []
        self._targets = list(targets)
        self._tokens = list(tokens)
        self._tool = tool
        self._args = args or {}
        self._base = base
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(len(tokens))]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.outcomes

    def _run(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            label, url = self._targets[(worker + n) % len(self._targets)]
            trace = trace_id(self._base + worker * 1_000_000 + n)
            started = time.monotonic()
            try:
                reply: Reply | None = rest_call(url, self._tokens[worker], self._tool, self._args, trace=trace)
            except (httpx2.HTTPError, ValueError):
                reply = None
            with self._lock:
                self.outcomes.append(Outcome(trace, label, reply, started, time.monotonic()))
            n += 1

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_for(self, calls: int, within: float) -> None:
        deadline = time.monotonic() + within
        while self.count() < calls:
            assert time.monotonic() < deadline, f"only {self.count()} calls in {within}s"
            time.sleep(0.05)
