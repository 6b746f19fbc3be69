"""A local port forward through the pool: 127.0.0.1:<port> → the host → dest_host:dest_port.

For the api-worker's ssh-tunnel mode: proxmoxer (blocking requests) talks to https://127.0.0.1:<port>
and every TCP connection becomes a 'direct-tcpip' channel on the host's pooled SSH connection, so a
reconnect of the pool is picked up by the next TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import threading
from typing import Protocol

import paramiko
from proxmox_mcp_contracts.settings import HostConfig

log = logging.getLogger(__name__)

_CHUNK = 65536


class ChannelOpener(Protocol):
    """What a forward needs from the pool: a 'direct-tcpip' channel through the host's connection."""

    async def open_direct_tcpip(
        self, host: HostConfig, dest_host: str, dest_port: int, *, origin: tuple[str, int] = ...
    ) -> paramiko.Channel: ...


class LocalForward:
    """Listening on 127.0.0.1:local_port until close(); each accepted connection is bridged in a thread."""

    def __init__(
        self,
        opener: ChannelOpener,
        host: HostConfig,
        dest_host: str,
        dest_port: int,
        loop: asyncio.AbstractEventLoop,
        *,
        open_timeout: float,
    ) -> None:
        self._opener = opener
        self._open_timeout = open_timeout
        self.host = host
        self.dest_host = dest_host
        self.dest_port = dest_port
        self._loop = loop
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.25)
        self.local_port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._open: set[socket.socket | paramiko.Channel] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept_loop, name="pmcp-ssh-forward", daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, address), daemon=True).start()

    def _serve(self, client: socket.socket, address: tuple[str, int]) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        channel: paramiko.Channel | None = None
        try:
            pending = asyncio.run_coroutine_threadsafe(
                self._opener.open_direct_tcpip(self.host, self.dest_host, self.dest_port, origin=address), self._loop
            )
            channel = pending.result(timeout=self._open_timeout)
            with self._lock:
                self._open.update((client, channel))
            _bridge(client, channel, self._stop)
        except Exception as exc:
            log.warning("ssh forward failed", extra={"node": self.host.node, "error_type": type(exc).__name__})
        finally:
            with self._lock:
                self._open.discard(client)
                if channel is not None:
                    self._open.discard(channel)
            with contextlib.suppress(Exception):
                client.close()
            if channel is not None:
                with contextlib.suppress(Exception):
                    channel.close()

    @property
    def alive(self) -> bool:
        """Still listening (not closed, accept loop running)."""
        return not self._stop.is_set() and self._acceptor.is_alive()

    def close(self) -> None:
        """Stop listening and cut every bridged connection.

        Only the local sockets are shut down here: each bridge thread then sees EOF and closes its own channel.
        Closing a paramiko channel from another thread while its bridge is sending races paramiko's
        channel state, and the SSH connection every other tunnel shares is not worth that risk."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for endpoint in list(self._open):
                if isinstance(endpoint, socket.socket):
                    with contextlib.suppress(OSError):
                        endpoint.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(timeout=2)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def _bridge(client: socket.socket, channel: paramiko.Channel, stop: threading.Event) -> None:
    while not stop.is_set():
        readable, _, _ = select.select([client, channel], [], [], 0.5)
        if client in readable:
            data = client.recv(_CHUNK)
            if not data:
                return
            channel.sendall(data)
        if channel in readable:
            data = channel.recv(_CHUNK)
            if not data:
                return
            client.sendall(data)
