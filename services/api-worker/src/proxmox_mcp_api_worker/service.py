"""Entry point of the api-worker: `proxmox-mcp-api-worker` (or `proxmox-mcp api-worker`)."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version

from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_contracts.subjects import API_SERVICE_NAME, WorkerKind
from proxmox_mcp_runtime.config import ConfigError
from proxmox_mcp_runtime.metrics.worker import watch_worker, worker_observer
from proxmox_mcp_runtime.ssh import paramiko_pipes
from proxmox_mcp_runtime.worker import WorkerRuntime, serve_until_stopped
from proxmox_mcp_runtime.worker_main import load_worker, worker_main

from proxmox_mcp_api_worker.handlers import ApiWorker
from proxmox_mcp_api_worker.settings import ApiWorkerSettings

log = logging.getLogger("proxmox_mcp_api_worker")


def _version() -> str:
    try:
        return version("proxmox-mcp-api-worker")
    except PackageNotFoundError:
        return "0.0.0"


def build_worker(config: ProxmoxConfig, settings: ApiWorkerSettings) -> tuple[ApiWorker, WorkerRuntime]:
    worker = ApiWorker(config, settings)
    runtime = WorkerRuntime(
        service_name=API_SERVICE_NAME,
        version=_version(),
        endpoints=worker.endpoints(),
        description="Drives the Proxmox VE API (guests, tasks, nodes, generic calls)",
        observer=worker_observer("api"),
        freeze=settings.freeze_gate(WorkerKind.API),
    )
    return worker, runtime


def announce(worker: ApiWorker) -> None:
    """Start-up log: configuration problems, and a loud warning for every cluster whose TLS is not verified."""
    for problem in worker.problems:
        log.error("api configuration problem: calls will fail until it is fixed", extra={"problem": problem})
    for cluster in worker.insecure_clusters:
        log.warning(
            "INSECURE: TLS verification of the Proxmox API is OFF (PROXMOX_VERIFY_SSL=false / api.verify_ssl = "
            "false): anyone on the network path can read the API credentials and forge answers. Pin the "
            "certificate instead (PROXMOX_FINGERPRINT / api.fingerprint) or set a CA file (PROXMOX_CA_FILE)",
            extra={"cluster": cluster, "insecure_tls": True},
        )


async def run(config: ProxmoxConfig, settings: ApiWorkerSettings, stop: asyncio.Event | None = None) -> None:
    worker, runtime = build_worker(config, settings)
    if not worker.clusters:
        raise ConfigError("no cluster to serve (check PMCP_API_CLUSTERS against the configured cluster names)")
    announce(worker)
    for problem in await asyncio.to_thread(worker.check_configuration):
        log.error("ssh configuration problem: calls will fail until it is fixed", extra={"problem": problem})
    watch_worker("api", runtime)
    try:
        await serve_until_stopped(settings.nats_url, runtime, drain_timeout=settings.drain_timeout, stop=stop)
    finally:
        await worker.close()


def load(env: dict[str, str] | None = None) -> tuple[ProxmoxConfig, ApiWorkerSettings]:
    return load_worker(ApiWorkerSettings, env)


def main() -> None:
    # Before any SSH channel exists: paramiko's own wake-up pipe lets one channel closed mid-data end the whole
    # pooled connection (see paramiko_pipes).
    paramiko_pipes.install()
    worker_main("api-worker", _version(), ApiWorkerSettings, run)


if __name__ == "__main__":
    main()
