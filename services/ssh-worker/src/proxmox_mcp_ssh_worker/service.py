"""Entry point of the ssh-worker: `proxmox-mcp-ssh-worker` (or `proxmox-mcp ssh-worker`)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_contracts.subjects import SSH_SERVICE_NAME
from proxmox_mcp_runtime import metrics
from proxmox_mcp_runtime.config import ConfigError, load_proxmox_config
from proxmox_mcp_runtime.logs import configure_logging
from proxmox_mcp_runtime.metrics_http import serve_metrics_from_env
from proxmox_mcp_runtime.ssh import SshEvent, SshPool
from proxmox_mcp_runtime.worker import WorkerRuntime, serve_until_stopped
from pydantic import ValidationError

from proxmox_mcp_ssh_worker.handlers import SshWorker
from proxmox_mcp_ssh_worker.policy import CommandAuthorizer, authorize_command
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
        metrics.observe_ssh_connect(cluster, event.outcome, event.seconds, reconnect=event.reconnect)
    elif event.kind == "command":
        metrics.observe_ssh_command(cluster, event.outcome, truncated=event.truncated)
    metrics.set_ssh_pool_size(cluster, pool.connections_open)


def build_worker(config: ProxmoxConfig, settings: SshWorkerSettings,
                 authorize: CommandAuthorizer = authorize_command) -> tuple[SshWorker, WorkerRuntime]:
    worker = SshWorker(config, settings, authorize, on_pool_event=record_pool_event)
    runtime = WorkerRuntime(
        service_name=SSH_SERVICE_NAME,
        version=_version(),
        endpoints=worker.endpoints(),
        description="Runs vetted commands on Proxmox hosts over pooled SSH connections",
        observer=metrics.worker_observer("ssh"),
    )
    return worker, runtime


async def run(config: ProxmoxConfig, settings: SshWorkerSettings, stop: asyncio.Event | None = None) -> None:
    worker, runtime = build_worker(config, settings)
    if not worker.clusters:
        raise ConfigError("no cluster to serve (check PMCP_SSH_CLUSTERS against the configured cluster names)")
    problems = await asyncio.to_thread(worker.check_configuration)
    for problem in problems:
        log.error("ssh configuration problem: calls will fail until it is fixed", extra={"problem": problem})
    metrics.track_worker_in_flight("ssh", lambda: runtime.inflight)
    try:
        await serve_until_stopped(settings.nats_url, runtime, drain_timeout=settings.drain_timeout, stop=stop)
    finally:
        await worker.close()


def load(env: dict[str, str] | None = None) -> tuple[ProxmoxConfig, SshWorkerSettings]:
    settings = SshWorkerSettings()
    environ = dict(os.environ if env is None else env)
    if settings.config_path is not None:
        environ["PMCP_CONFIG"] = str(settings.config_path)
    return load_proxmox_config(environ, dotenv=settings.env_file), settings


def main() -> None:
    configure_logging("ssh-worker")
    try:
        config, settings = load()
    except (ConfigError, ValidationError) as exc:
        log.error("cannot start the ssh-worker", extra={"problem": str(exc)})
        sys.exit(2)
    server = serve_metrics_from_env("ssh-worker", _version())
    try:
        asyncio.run(run(config, settings))
    except ConfigError as exc:
        log.error("cannot start the ssh-worker", extra={"problem": str(exc)})
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
