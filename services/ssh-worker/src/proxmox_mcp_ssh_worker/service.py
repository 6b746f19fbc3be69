"""Entry point of the ssh-worker: `proxmox-mcp-ssh-worker` (or `proxmox-mcp ssh-worker`)."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version

from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_contracts.subjects import SSH_SERVICE_NAME, WorkerKind
from proxmox_mcp_runtime.config import ConfigError
from proxmox_mcp_runtime.metrics.ssh import (
    declare_ssh_cluster,
    observe_ssh_command,
    observe_ssh_connect,
    set_ssh_pool_size,
)
from proxmox_mcp_runtime.metrics.worker import watch_worker, worker_observer
from proxmox_mcp_runtime.ssh import SshEvent, SshPool, paramiko_pipes
from proxmox_mcp_runtime.worker import WorkerRuntime, serve_until_stopped
from proxmox_mcp_runtime.worker_main import load_worker, worker_main

from proxmox_mcp_ssh_worker.handlers import SshWorker
from proxmox_mcp_ssh_worker.settings import SshWorkerSettings

log = logging.getLogger("proxmox_mcp_ssh_worker")


def _version() -> str:
    try:
        return version("proxmox-mcp-ssh-worker")
    except PackageNotFoundError:
        return "0.0.0"


def record_pool_event(cluster: str, pool: SshPool, event: SshEvent) -> None:
    """Pool events → Prometheus metrics (labels: cluster and outcome only, never host names)."""
    if event.kind == "connect":
        observe_ssh_connect(cluster, event.outcome, event.seconds, reconnect=event.reconnect)
    elif event.kind == "command":
        observe_ssh_command(cluster, event.outcome, truncated=event.truncated)
    set_ssh_pool_size(cluster, pool.connections_open)


def build_worker(config: ProxmoxConfig, settings: SshWorkerSettings) -> tuple[SshWorker, WorkerRuntime]:
    worker = SshWorker(config, settings, on_pool_event=record_pool_event)
    runtime = WorkerRuntime(
        service_name=SSH_SERVICE_NAME,
        version=_version(),
        endpoints=worker.endpoints(),
        description="Runs vetted commands on Proxmox hosts over pooled SSH connections",
        observer=worker_observer("ssh"),
        freeze=settings.freeze_gate(WorkerKind.SSH),
    )
    return worker, runtime


async def run(config: ProxmoxConfig, settings: SshWorkerSettings, stop: asyncio.Event | None = None) -> None:
    worker, runtime = build_worker(config, settings)
    if not worker.clusters:
        raise ConfigError("no cluster to serve (check PMCP_SSH_CLUSTERS against the configured cluster names)")
    problems = await asyncio.to_thread(worker.check_configuration)
    for problem in problems:
        log.error("ssh configuration problem: calls will fail until it is fixed", extra={"problem": problem})
    for cluster in worker.clusters:
        declare_ssh_cluster(cluster)
    watch_worker("ssh", runtime)
    try:
        await serve_until_stopped(settings.nats_url, runtime, drain_timeout=settings.drain_timeout, stop=stop)
    finally:
        await worker.close()


def load(env: dict[str, str] | None = None) -> tuple[ProxmoxConfig, SshWorkerSettings]:
    return load_worker(SshWorkerSettings, env)


def main() -> None:
    # Before any SSH channel exists: paramiko's own wake-up pipe lets one channel closed mid-data end the whole
    # pooled connection (see paramiko_pipes).
    paramiko_pipes.install()
    worker_main("ssh-worker", _version(), SshWorkerSettings, run)


if __name__ == "__main__":
    main()
