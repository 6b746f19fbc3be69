"""Pick the backend for a cluster's `api.mode`.

- direct: HTTPS to api.host:api.port (pve_client.HttpsBackend).
- ssh-tunnel: the same HttpsBackend through a local forward of the cluster's SSH connection to the host's
  127.0.0.1:api.port (tunnel.TunnelBackend); TLS stays pinned/verified.
- pvesh: `pvesh <get|create|set|delete> PATH --k=v --output-format json` over SSH (pvesh.PveshBackend).

The SSH modes use the cluster's `ssh` settings and hosts (the same ClusterConfig the ssh-worker reads) and the
shared SSH pool of proxmox_mcp_runtime. Their SSH host is the one api.host names (by node or address), else the
cluster's first host; an api.host that is not among the hosts is reached by SSH at that address.
"""

from __future__ import annotations

from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig
from proxmox_mcp_runtime.metrics.ssh import observe_ssh_connect
from proxmox_mcp_runtime.ssh import SshEvent, SshPool

from proxmox_mcp_api_worker.backend import Method, Params, PveBackend
from proxmox_mcp_api_worker.pve_client import CredentialsMissing, HttpsBackend
from proxmox_mcp_api_worker.pvesh import PveshBackend
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_api_worker.tunnel import TunnelBackend


class UnusableBackend:
    """Stands in for a cluster whose configuration cannot work: every call fails with the reason."""

    def __init__(self, cluster: str, mode: str, problem: str) -> None:
        self.cluster = cluster
        self._mode = mode
        self.problem = problem

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def insecure_tls(self) -> bool:
        return False

    @property
    def waits_for_tasks(self) -> bool:
        return False

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        raise ServiceFailure(ErrorCode.UNAVAILABLE, f"the api-worker cannot use cluster {self.cluster}: "
                             f"{self.problem}")

    async def certificate(self, timeout: float) -> bytes | None:
        return None

    async def close(self) -> None:
        return None


def ssh_api_host(cluster: ClusterConfig) -> HostConfig | None:
    """The SSH host that carries the API in the ssh-tunnel and pvesh modes."""
    if cluster.api.host:
        return cluster.host_for(cluster.api.host) or HostConfig(node=cluster.api.host, address=cluster.api.host)
    return cluster.default_host


def ssh_pool(cluster: ClusterConfig, settings: ApiWorkerSettings) -> SshPool:
    def record(event: SshEvent) -> None:
        if event.kind == "connect":
            observe_ssh_connect(cluster.name, event.outcome, event.seconds, reconnect=event.reconnect)

    return SshPool(cluster.ssh, on_event=record, max_threads=settings.threads,
                   max_sessions_per_host=settings.ssh_sessions, liveness=settings.ssh_liveness())


def build_backend(cluster: ClusterConfig, settings: ApiWorkerSettings) -> tuple[PveBackend, str | None]:
    """The cluster's backend, and the configuration problem when it had to be an UnusableBackend."""
    mode = cluster.api.mode
    if mode == "direct":
        host = cluster.api_host()
        if not host:
            problem = "no API host configured (api.host / PROXMOX_HOST, or a host in hosts)"
            return UnusableBackend(cluster.name, mode, problem), problem
        try:
            return HttpsBackend(cluster.name, cluster.api, host, threads=settings.threads, mode=mode), None
        except (CredentialsMissing, ValueError) as exc:
            return UnusableBackend(cluster.name, mode, str(exc)), str(exc)
    ssh_host = ssh_api_host(cluster)
    if ssh_host is None:
        problem = f"api mode {mode!r} needs an SSH host (hosts / SSH_HOST) and the cluster's ssh settings"
        return UnusableBackend(cluster.name, mode, problem), problem
    try:
        pool = ssh_pool(cluster, settings)
        if mode == "ssh-tunnel":
            return TunnelBackend(cluster, pool, ssh_host, threads=settings.threads), None
        return PveshBackend(cluster, pool, ssh_host, max_output=settings.pvesh_max_output), None
    except ServiceFailure as exc:
        return UnusableBackend(cluster.name, mode, exc.info.message), exc.info.message
    except (CredentialsMissing, ValueError) as exc:
        return UnusableBackend(cluster.name, mode, str(exc)), str(exc)


def backend_pool(backend: PveBackend) -> SshPool | None:
    """The SSH pool of an ssh-tunnel or pvesh backend (for start-up checks)."""
    if isinstance(backend, TunnelBackend | PveshBackend):
        return backend.pool
    return None
