"""The whole high-availability layout as real processes, for the fault tests and bench/soak.py: a 3-node NATS
cluster (JetStream R3, each node in its own network namespace so it can be cut off), the simulator, two of each
worker, two gateways on PMCP_STATE=jetstream and Caddy (the repository's Caddyfile) in front of both.

Every process can be killed (SIGKILL), stopped (SIGTERM: a worker drains, a gateway drains then stops) and started
again; a gateway comes back on its own port, since Caddy's upstream list is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_contracts.subjects import API_SERVICE_NAME, SSH_SERVICE_NAME
from proxmox_mcp_runtime.config import dump_config_toml
from proxmox_mcp_runtime.discovery import gather_replies

from tests.integration.gateway.conftest import FAST, sim_dict
from tests.support.caddy import CaddyProc, start_caddy
from tests.support.ha_load import Guest
from tests.support.mcp_client import SimClient
from tests.support.nats_cluster import Layout, NatsCluster, start_nats_cluster
from tests.support.procs import Proc, free_port, wait_until
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.shared_state import connected, jetstream_env, new_token, token_store, wait_accepted
from tests.support.sim import SimInfo, start_sim

WORKER_KINDS = ("ssh-worker", "api-worker")
SERVICE_NAMES = {"ssh-worker": SSH_SERVICE_NAME, "api-worker": API_SERVICE_NAME}
GATEWAY_ENV = {
    **FAST,
    **jetstream_env(3),
    "PMCP_TRUSTED_PROXIES": "127.0.0.1",
    "PMCP_STATE_TIMEOUT": "20",  # longer than a stream leader election (~5 s): calls wait through it
}
# The workers read the freeze switch from JetStream, as the gateways keep it there (with PMCP_STATE=local they
# would ask a gateway over NATS, and a gateway that is restarting or cut off could not answer).
WORKER_ENV = {**FAST, **jetstream_env(3)}
_CALLS = re.compile(r"^proxmox_mcp_tool_calls_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


@dataclass
class GatewaySlot:
    """One gateway behind Caddy: its port stays, the process changes with restarts."""

    index: int
    port: int
    gateway: GatewayProc | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.gateway is not None and self.gateway.proc.alive()


@dataclass
class HaLayout:
    workdir: Path
    cluster: NatsCluster
    sim: SimInfo
    config_path: Path
    gateways: list[GatewaySlot]
    caddy: CaddyProc | None = None
    """Started last (it needs a gateway to answer through it)."""
    workers: dict[str, list[Proc]] = field(default_factory=dict[str, list[Proc]])
    gateway_env: dict[str, str] = field(default_factory=dict[str, str])
    _retired: list[Proc] = field(default_factory=list[Proc])

    @property
    def front(self) -> CaddyProc:
        assert self.caddy is not None, "Caddy is not started yet"
        return self.caddy

    @property
    def mcp_url(self) -> str:
        return f"{self.front.url}/mcp"

    # --- gateways --------------------------------------------------------------------------

    def start_gateway(self, slot: GatewaySlot, *, ready: bool = True) -> GatewayProc:
        slot.starts += 1
        slot.gateway = start_gateway(self.cluster.url, self.workdir, port=slot.port,
                                     env={**GATEWAY_ENV, **self.gateway_env})
        if ready:
            wait_ready(slot.gateway, timeout=60)
        return slot.gateway

    def kill_gateway(self, slot: GatewaySlot) -> None:
        if slot.gateway is not None:
            slot.gateway.proc.kill()
            self._retired.append(slot.gateway.proc)

    def stop_gateway(self, slot: GatewaySlot, timeout: float = 40.0) -> int | None:
        """SIGTERM: the gateway drains (PMCP_DRAIN_DELAY), then finishes its calls and exits."""
        if slot.gateway is None:
            return None
        self._retired.append(slot.gateway.proc)
        return slot.gateway.proc.stop(signal.SIGTERM, timeout=timeout)

    def calls_served(self, slot: GatewaySlot) -> float:
        """Tool calls this gateway process has answered (its /metrics), 0 when it does not answer."""
        try:
            text = httpx2.get(f"{slot.base_url}/metrics", timeout=2).text
        except httpx2.HTTPError:
            return 0.0
        return sum(float(value) for value in _CALLS.findall(text))

    def wait_in_rotation(self, slot: GatewaySlot, timeout: float = 30.0) -> None:
        """Until Caddy sends this gateway calls again (a restarted gateway is ready before Caddy's next health
        check says so)."""
        wait_until(lambda: self.calls_served(slot) > 0, timeout=timeout,
                   what=f"gateway {slot.index} to get calls through Caddy",
                   proc=slot.gateway.proc if slot.gateway else None, interval=0.1)

    # --- workers ---------------------------------------------------------------------------

    def start_worker(self, kind: str, index: int) -> Proc:
        proc = start_worker(kind, self.cluster.url, self.config_path, self.workdir,
                            name=f"{kind}-{index}-{time.monotonic_ns()}", env=WORKER_ENV)
        workers = self.workers.setdefault(kind, [])
        if index < len(workers):
            workers[index] = proc
        else:
            workers.append(proc)
        return proc

    def kill_worker(self, kind: str, index: int) -> None:
        proc = self.workers[kind][index]
        proc.kill()
        self._retired.append(proc)

    def stop_worker(self, kind: str, index: int, timeout: float = 40.0) -> int | None:
        """SIGTERM: the worker stops taking requests, finishes the ones it has and exits."""
        proc = self.workers[kind][index]
        self._retired.append(proc)
        return proc.stop(signal.SIGTERM, timeout=timeout)

    def worker_instances(self, kind: str) -> int:
        """How many instances of a worker kind answer a `$SRV.PING` now (each answers once)."""
        subject = f"$SRV.PING.{SERVICE_NAMES[kind]}"

        async def ping() -> int:
            async with connected(self.cluster.urls) as nc:
                return len({reply.get("id") for reply in await gather_replies(nc, subject, 0.5)})

        return asyncio.run(ping())

    def wait_workers(self, kind: str, count: int, timeout: float = 30.0) -> None:
        wait_until(lambda: self.worker_instances(kind) == count, timeout=timeout,
                   what=f"{count} {kind} instances to answer", interval=0.05)

    # --- tokens ----------------------------------------------------------------------------

    async def token(self, name: str) -> str:
        """A new admin token in the shared bucket (every gateway accepts it within a second)."""
        async with connected(self.cluster.urls) as nc:
            return (await new_token(await token_store(nc, replicas=3), name)).secret

    async def accepted_tokens(self, prefix: str, count: int) -> list[str]:
        """`count` new tokens that every running gateway accepts already."""
        tokens = [await self.token(f"{prefix}-{n}") for n in range(count)]
        for slot in self.gateways:
            if slot.gateway is not None:
                for token in tokens:
                    await asyncio.to_thread(wait_accepted, slot.gateway, token, accepted=True, within=5)
        return tokens

    def guests(self) -> list[Guest]:
        """The simulator's QEMU guests (templates aside): what the load's clients may change."""
        with SimClient(sim_dict(self.sim)) as sim:
            return [Guest(g["vmid"], g["node"]) for g in sim.guests() if g["type"] == "qemu" and not g.get("template")]

    def stop(self) -> None:
        procs = [*([self.caddy.proc] if self.caddy else []),
                 *(s.gateway.proc for s in self.gateways if s.gateway is not None),
                 *(p for kind in self.workers.values() for p in kind), self.sim.proc, *self._retired]
        for proc in procs:
            proc.stop()
        self.cluster.stop()


def start_ha_layout(workdir: Path, *, layout: Layout = "netns", gateways: int = 2, workers_per_kind: int = 2,
                    gateway_env: dict[str, str] | None = None) -> HaLayout:
    """Everything started and ready: both gateways answer /health/ready and Caddy serves HTTPS."""
    cluster = start_nats_cluster(workdir / "nats", layout=layout)
    started: list[Proc] = []
    try:
        sim = start_sim(workdir / "sim", task_duration=0.2)
        started.append(sim.proc)
        config = write_private(workdir / "clusters.toml", dump_config_toml(config_for_sim(sim_dict(sim))))
        slots = [GatewaySlot(index=n, port=free_port()) for n in range(gateways)]
        stack = HaLayout(workdir=workdir, cluster=cluster, sim=sim, config_path=config, gateways=slots,
                         gateway_env=dict(gateway_env or {}))
        started.extend(stack.start_worker(kind, index) for kind in WORKER_KINDS for index in range(workers_per_kind))
        started.extend(stack.start_gateway(slot, ready=False).proc for slot in slots)
        for slot in slots:
            assert slot.gateway is not None
            wait_ready(slot.gateway, timeout=60)
        for kind in WORKER_KINDS:
            stack.wait_workers(kind, workers_per_kind)
        # Last: Caddy's start waits for an answer through it, which needs a gateway.
        stack.caddy = start_caddy(workdir / "caddy", " ".join(f"127.0.0.1:{slot.port}" for slot in slots))
        started.append(stack.caddy.proc)
    except BaseException:
        for proc in started:
            proc.stop()
        cluster.stop()
        raise
    return stack


@contextlib.contextmanager
def ha_layout(workdir: Path, **options: Any) -> Iterator[HaLayout]:
    stack = start_ha_layout(workdir, **options)
    try:
        yield stack
    finally:
        stack.stop()
