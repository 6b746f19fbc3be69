"""The ssh-tunnel backend (api.mode = "ssh-tunnel"): the direct HTTPS backend, pointed at a local port forward
through the cluster's pooled SSH connection to the host's 127.0.0.1:<api.port>, for hosts whose API port is
firewalled but whose SSH port is not.

TLS is unchanged: the pinned fingerprint (or CA file) is checked end to end, so the tunnel adds no trust. Every
TCP connection of the HTTPS session becomes one 'direct-tcpip' channel of the pooled SSH connection, so a dead
SSH connection is replaced by the pool on the next TCP connection; the local listener itself is re-created if it
ever stops. When a request fails because the tunnel is down, the SSH side is checked and its failure reported
(host key, login, reachability, or a refused forward) instead of a bare "connection broke"; a GET that failed
that way is tried once more after the tunnel came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig
from proxmox_mcp_runtime.ssh import LocalForward, SshPool

from proxmox_mcp_api_worker.backend import Method, Params
from proxmox_mcp_api_worker.pve_client import HttpsBackend

log = logging.getLogger(__name__)

TUNNEL_ADDRESS = "127.0.0.1"
"""Where the API listens as seen from the host (pveproxy listens on every address, loopback included)."""


class TunnelBackend:
    """PveBackend: HTTPS to the host's 127.0.0.1:<api.port> through an SSH local forward."""

    def __init__(self, cluster: ClusterConfig, pool: SshPool, host: HostConfig, *, threads: int) -> None:
        self.cluster = cluster.name
        self.pool = pool
        self.host = host
        self.remote_port = cluster.api.port
        # Built now so credential and trust problems show at start-up; the port is set once the forward listens.
        self.https = HttpsBackend(cluster.name, cluster.api, TUNNEL_ADDRESS, port=cluster.api.port, threads=threads,
                                  mode="ssh-tunnel")
        self._forward: LocalForward | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def mode(self) -> str:
        return "ssh-tunnel"

    @property
    def insecure_tls(self) -> bool:
        return self.https.insecure_tls

    @property
    def waits_for_tasks(self) -> bool:
        return False

    @property
    def local_port(self) -> int | None:
        return self._forward.local_port if self._forward is not None else None

    async def _ensure_forward(self) -> None:
        if self._forward is not None and self._forward.alive:
            return
        async with self._lock:
            if self._closed:
                raise ServiceFailure(ErrorCode.UNAVAILABLE, "the api-worker is shutting down", retryable=True)
            if self._forward is not None and self._forward.alive:
                return
            if self._forward is not None:
                await self._forward.aclose()
            forward = await self.pool.forward_local(self.host, TUNNEL_ADDRESS, self.remote_port)
            self.https.retarget(TUNNEL_ADDRESS, forward.local_port)
            self._forward = forward
            log.info("ssh tunnel listening", extra={"cluster": self.cluster, "node": self.host.node,
                                                     "local_port": forward.local_port})

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        await self._ensure_forward()
        started = time.monotonic()
        try:
            return await self.https.request(method, path, params, timeout=timeout)
        except ServiceFailure as failure:
            if failure.code is not ErrorCode.UNAVAILABLE:
                raise
            await self._raise_if_tunnel_down(failure, method)
            left = timeout - (time.monotonic() - started)
            if method != "GET" or not failure.info.retryable or left <= 0:
                raise
            log.info("retrying a GET after the ssh tunnel recovered", extra={"cluster": self.cluster})
            return await self.https.request(method, path, params, timeout=left)

    async def _raise_if_tunnel_down(self, failure: ServiceFailure, method: str) -> None:
        """Open (and close) one forwarding channel: this reconnects SSH when needed, and says why it cannot."""
        try:  # bounded by the pool's connect timeout
            channel = await self.pool.open_direct_tcpip(self.host, TUNNEL_ADDRESS, self.remote_port)
        except ServiceFailure as ssh:
            unknown = "" if method == "GET" else "; the outcome is unknown, check before retrying"
            raise ServiceFailure(
                ssh.code,
                f"the SSH tunnel to the Proxmox API of cluster {self.cluster} (through node {self.host.node}) is "
                f"down: {ssh.info.message}{unknown}",
                retryable=ssh.info.retryable and method == "GET",
                details={"tunnel": True},
            ) from None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(channel.close)
        log.info("ssh tunnel is up after a failed request", extra={"cluster": self.cluster,
                                                                    "code": failure.code.value})

    async def certificate(self, timeout: float) -> bytes | None:
        await self._ensure_forward()
        return await self.https.certificate(timeout)

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            if self._forward is not None:
                await self._forward.aclose()
                self._forward = None
        await self.https.close()
        await self.pool.close()
