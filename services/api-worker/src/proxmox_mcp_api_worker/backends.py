"""Pick the backend for a cluster's `api.mode`.

- direct: HTTPS to api.host:api.port (pve_client.HttpsBackend).
- ssh-tunnel (later): the same HttpsBackend, pointed at 127.0.0.1:<port> of a LocalForward from
  proxmox_mcp_runtime.ssh (SshPool.forward_local(host, "127.0.0.1", 8006)); TLS stays pinned/verified.
- pvesh (later): a backend that runs `pvesh <get|create|set|delete> PATH -k v --output-format json` through
  SshPool.run and turns its failures into errors.PveHttpError, so errors map to the same codes.
"""

from __future__ import annotations

from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ClusterConfig

from proxmox_mcp_api_worker.backend import Method, Params, PveBackend
from proxmox_mcp_api_worker.pve_client import CredentialsMissing, HttpsBackend
from proxmox_mcp_api_worker.settings import ApiWorkerSettings


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

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        raise ServiceFailure(ErrorCode.UNAVAILABLE, f"the api-worker cannot use cluster {self.cluster}: "
                             f"{self.problem}")

    async def certificate(self, timeout: float) -> bytes | None:
        return None

    async def close(self) -> None:
        return None


def build_backend(cluster: ClusterConfig, settings: ApiWorkerSettings) -> tuple[PveBackend, str | None]:
    """The cluster's backend, and the configuration problem when it had to be an UnusableBackend."""
    mode = cluster.api.mode
    if mode != "direct":
        problem = f"api mode {mode!r} is not supported by this api-worker yet; use mode = \"direct\""
        return UnusableBackend(cluster.name, mode, problem), problem
    host = cluster.api_host()
    if not host:
        problem = "no API host configured (api.host / PROXMOX_HOST, or a host in hosts)"
        return UnusableBackend(cluster.name, mode, problem), problem
    try:
        return HttpsBackend(cluster.name, cluster.api, host, threads=settings.threads, mode=mode), None
    except (CredentialsMissing, ValueError) as exc:
        return UnusableBackend(cluster.name, mode, str(exc)), str(exc)
