"""SshPool: one authenticated SSH connection per host, shared by every call, a new channel per command.

All paramiko work runs in the pool's own threads; coroutines only wait. A dead transport is replaced
transparently, but only the *connect* is retried: a command whose channel was opened is never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Literal, TypeVar

import paramiko
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import HostConfig, SshSettings

from proxmox_mcp_runtime.futures import retrieve_outcome
from proxmox_mcp_runtime.ssh.command import (
    ChannelOpenFailed,
    CommandOutput,
    command_line,
    open_channel,
    run_on_transport,
)
from proxmox_mcp_runtime.ssh.connection import ConnectFailed, Credentials, Target, open_transport
from proxmox_mcp_runtime.ssh.forward import LocalForward
from proxmox_mcp_runtime.ssh.keys import load_private_key
from proxmox_mcp_runtime.ssh.liveness import HostLiveness, HostNotAnswering, LivenessPolicy
from proxmox_mcp_runtime.ssh.trust import HostKeyVerifier

log = logging.getLogger(__name__)

T = TypeVar("T")
HostKey = tuple[str, int]

EventKind = Literal["connect", "command", "disconnect"]


@dataclass(frozen=True)
class SshEvent:
    """What the pool did, for metrics and logs. Labels match proxmox_mcp_runtime.metrics.ssh.

    connect: outcome ok | auth_failed | host_key_mismatch | unreachable | timeout | error; reconnect
    is True when a dead connection was replaced. command: outcome ok | nonzero | timeout | error (the
    ssh-worker also reports "denied" for policy refusals).
    disconnect: a pooled connection was found dead, closed, or dropped because the host stopped answering
    (outcome "dead", "closed" or "unresponsive").
    """

    kind: EventKind
    node: str
    outcome: str
    seconds: float = 0.0
    reconnect: bool = False
    truncated: bool = False


@dataclass
class PoolStats:
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    last_connect_seconds: float | None = None
    commands: int = 0
    command_timeouts: int = 0
    truncated_outputs: int = 0


EventCallback = Callable[[SshEvent], None]


class SshPool:
    """Pooled SSH connections for one cluster's SshSettings.

    Output cap: max_output bytes for stdout and stderr *combined*; past it the rest is read and discarded.
    Timeouts: the local deadline sends the SSH 'signal' request and closes the channel; with
    `remote_timeout` (settings.remote_timeout unless given; default on) the command also runs under
    `exec timeout --signal=TERM --kill-after=K` on the host, one second longer, so the process group
    ends even when the signal is not honoured. Commands get stdin EOF at once.
    Liveness: while a command runs, the host must answer a probe every `liveness.interval` seconds; after
    `liveness.misses` unanswered ones the command fails (unavailable) and the connection is dropped, instead of
    waiting for the command's timeout on a host that froze or was cut off.
    """

    def __init__(
        self,
        settings: SshSettings,
        *,
        on_event: EventCallback | None = None,
        max_threads: int = 64,
        max_sessions_per_host: int = 6,
        remote_timeout: bool | None = None,
        kill_after: float = 2.0,
        liveness: LivenessPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.stats = PoolStats()
        self.remote_timeout = settings.remote_timeout if remote_timeout is None else remote_timeout
        self.kill_after = kill_after
        self.liveness = liveness or LivenessPolicy()
        self._verifier = HostKeyVerifier.from_settings(settings)
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="pmcp-ssh")
        self._max_sessions = max_sessions_per_host
        self._transports: dict[HostKey, paramiko.Transport] = {}
        self._liveness: dict[HostKey, HostLiveness] = {}
        self._connecting: dict[HostKey, asyncio.Task[paramiko.Transport]] = {}
        self._sessions: dict[HostKey, asyncio.Semaphore] = {}
        self._key: paramiko.PKey | None = None
        self._key_lock = threading.Lock()
        self._ever_connected: set[HostKey] = set()
        self._closed = False

    # --- public API -------------------------------------------------------------------------

    @property
    def connections_open(self) -> int:
        return sum(1 for t in self._transports.values() if t.is_active())

    async def run(
        self,
        host: HostConfig,
        command: str | Sequence[str],
        *,
        timeout: float,
        max_output: int | None = None,
        raise_on_timeout: bool = True,
    ) -> CommandOutput:
        """Run a command (a list argv is sent as shlex.join(argv)) and return its output.

        Raises ServiceFailure: timeout (unless raise_on_timeout is False: then timed_out=True comes back
        with the partial output), unavailable (cannot connect: retryable; connection lost or host not
        answering mid-command: not retryable, outcome unknown), permission_denied (host key not trusted),
        upstream_error (login refused).
        """
        if timeout <= 0:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "timeout must be positive")
        line = command_line(command, timeout=timeout, wrap=self.remote_timeout, kill_after=self.kill_after)
        cap = self.settings.max_output_bytes if max_output is None else max_output
        cancel = threading.Event()
        async with self._session_slot(host):
            try:
                output = await self._with_channel_retry(
                    host,
                    lambda transport: partial(
                        run_on_transport, transport, line, timeout=timeout, max_output=cap,
                        open_timeout=self.settings.connect_timeout, cancel=cancel,
                        liveness=self._liveness_of(host, transport),
                    ),
                    cancel=cancel,
                    what="run the command",
                )
            except HostNotAnswering as gone:
                self._forget(host, gone.transport, outcome="unresponsive")
                self.stats.commands += 1
                self._emit(SshEvent("command", host.node, "error"))
                raise ServiceFailure(
                    ErrorCode.UNAVAILABLE,
                    f"node {host.node} stopped answering over SSH ({gone}: frozen or cut off); the connection was "
                    "dropped and the command's outcome is unknown",
                    retryable=False,
                ) from None
            except ServiceFailure:
                self.stats.commands += 1
                self._emit(SshEvent("command", host.node, "error"))
                raise
        self._count_command(host, output)
        if output.timed_out and raise_on_timeout:
            raise ServiceFailure(
                ErrorCode.TIMEOUT,
                f"the command did not finish within {timeout:g}s on node {host.node}; it was stopped",
                details={"stdout_bytes": len(output.stdout), "stderr_bytes": len(output.stderr)},
            )
        return output

    async def probe(self, host: HostConfig) -> float:
        """Seconds to (re)connect if needed and open+close a session channel; nothing runs on the host."""
        started = time.perf_counter()
        async with self._session_slot(host):

            def open_and_close(transport: paramiko.Transport) -> Callable[[], None]:
                def work() -> None:
                    open_channel(transport, self.settings.connect_timeout).close()

                return work

            await self._with_channel_retry(host, open_and_close, cancel=None, what="probe")
        return time.perf_counter() - started

    async def open_direct_tcpip(
        self, host: HostConfig, dest_host: str, dest_port: int, *, origin: tuple[str, int] = ("127.0.0.1", 0)
    ) -> paramiko.Channel:
        """A 'direct-tcpip' channel to dest_host:dest_port as seen from the host (for ssh-tunnel API mode)."""

        def opener(transport: paramiko.Transport) -> Callable[[], paramiko.Channel]:
            def work() -> paramiko.Channel:
                if not transport.is_active():
                    raise ChannelOpenFailed("transport is not active")
                try:
                    return transport.open_channel(
                        "direct-tcpip", (dest_host, dest_port), origin, timeout=self.settings.connect_timeout
                    )
                except paramiko.ChannelException as exc:
                    raise ServiceFailure(
                        ErrorCode.UNAVAILABLE,
                        f"node {host.node} refused to forward to {dest_host}:{dest_port} ({exc.text or exc.code})",
                        retryable=True,
                    ) from None
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise ChannelOpenFailed(str(exc)) from None

            return work

        return await self._with_channel_retry(host, opener, cancel=None, what="open a forwarding channel")

    async def forward_local(self, host: HostConfig, dest_host: str, dest_port: int) -> LocalForward:
        """Listen on 127.0.0.1:<forward.local_port>; each connection is tunnelled to dest_host:dest_port via host.
        Close it with forward.close() (or await forward.aclose())."""
        return LocalForward(
            self, host, dest_host, dest_port, asyncio.get_running_loop(),
            open_timeout=self.settings.connect_timeout * 2 + 5,
        )

    async def close(self) -> None:
        """Close every connection and stop the threads (commands under way end with unavailable)."""
        self._closed = True
        for task in list(self._connecting.values()):
            task.cancel()
        transports = list(self._transports.values())
        self._transports.clear()
        self._liveness.clear()
        for transport in transports:
            await self._in_thread(transport.close)
            self._emit(SshEvent("disconnect", "", "closed"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- connections ------------------------------------------------------------------------

    def _host_key(self, host: HostConfig) -> HostKey:
        return (host.address, host.port or self.settings.port)

    def _session_slot(self, host: HostConfig) -> asyncio.Semaphore:
        # sshd allows MaxSessions (default 10) channels per connection; queue beyond our share.
        key = self._host_key(host)
        slot = self._sessions.get(key)
        if slot is None:
            slot = self._sessions[key] = asyncio.Semaphore(self._max_sessions)
        return slot

    async def _with_channel_retry(
        self,
        host: HostConfig,
        make_work: Callable[[paramiko.Transport], Callable[[], T]],
        *,
        cancel: threading.Event | None,
        what: str,
    ) -> T:
        for attempt in range(2):
            transport = await self._transport(host)
            try:
                return await self._in_thread(make_work(transport), cancel)
            except ChannelOpenFailed:
                # Nothing ran: drop the dead connection and connect again, once.
                self._forget(host, transport, outcome="dead")
                if attempt == 1:
                    break
        raise ServiceFailure(
            ErrorCode.UNAVAILABLE, f"could not {what}: the SSH connection to node {host.node} keeps failing",
            retryable=True,
        )

    async def _transport(self, host: HostConfig) -> paramiko.Transport:
        if self._closed:
            raise ServiceFailure(ErrorCode.UNAVAILABLE, "the SSH pool is shut down", retryable=True)
        key = self._host_key(host)
        transport = self._transports.get(key)
        if transport is not None and transport.is_active():
            return transport
        if transport is not None:
            self._forget(host, transport, outcome="dead")
        task = self._connecting.get(key)
        if task is None:
            # One connect per host however many calls wait for it; shielded so a caller's
            # cancellation cannot leave a half-made connection behind.
            task = asyncio.ensure_future(self._connect(host, key, reconnect=key in self._ever_connected))
            self._connecting[key] = task
            task.add_done_callback(lambda _t: self._connecting.pop(key, None))
        return await asyncio.shield(task)

    async def _connect(self, host: HostConfig, key: HostKey, *, reconnect: bool) -> paramiko.Transport:
        target = Target(node=host.node, address=key[0], port=key[1])
        started = time.perf_counter()
        try:
            credentials = await self._in_thread(self._credentials)
            transport = await self._in_thread(
                partial(
                    open_transport, target, credentials, self._verifier,
                    timeout=self.settings.connect_timeout, keepalive_interval=self.settings.keepalive_interval,
                )
            )
        except ServiceFailure as failure:
            seconds = time.perf_counter() - started
            self.stats.connect_failures += 1
            outcome = failure.outcome if isinstance(failure, ConnectFailed) else "error"
            self._emit(SshEvent("connect", host.node, outcome, seconds, reconnect=reconnect))
            log.warning("ssh connect failed", extra={"node": host.node, "outcome": outcome, "code": failure.code})
            raise
        seconds = time.perf_counter() - started
        if self._closed:
            await self._in_thread(transport.close)
            raise ServiceFailure(ErrorCode.UNAVAILABLE, "the SSH pool is shut down", retryable=True)
        self._transports[key] = transport
        if self.liveness.enabled:
            self._liveness[key] = HostLiveness(transport, self.liveness)
        self._ever_connected.add(key)
        self.stats.connects += 1
        self.stats.reconnects += int(reconnect)
        self.stats.last_connect_seconds = seconds
        self._emit(SshEvent("connect", host.node, "ok", seconds, reconnect=reconnect))
        log.info("ssh connected", extra={"node": host.node, "seconds": round(seconds, 4), "reconnect": reconnect})
        return transport

    def _credentials(self) -> Credentials:
        settings = self.settings
        with self._key_lock:
            if self._key is None and settings.key_path is not None:
                passphrase = settings.key_passphrase.get_secret_value() if settings.key_passphrase else None
                self._key = load_private_key(settings.key_path.expanduser(), passphrase)
            password = settings.password.get_secret_value() if settings.password else None
            return Credentials(user=settings.user, key=self._key, password=password)

    def check_credentials(self) -> ServiceFailure | None:
        """Load the key now (blocking): None when usable, else the failure a call would get. For start-up logs."""
        try:
            self._credentials()
        except ServiceFailure as failure:
            return failure
        return None

    def _forget(self, host: HostConfig, transport: paramiko.Transport, *, outcome: str) -> None:
        key = self._host_key(host)
        if self._transports.get(key) is transport:
            del self._transports[key]
            self._liveness.pop(key, None)
            self._emit(SshEvent("disconnect", host.node, outcome))
            try:
                self._executor.submit(transport.close)
            except RuntimeError:  # executor already shut down by close()
                transport.close()

    def _liveness_of(self, host: HostConfig, transport: paramiko.Transport) -> HostLiveness | None:
        liveness = self._liveness.get(self._host_key(host))
        return liveness if liveness is not None and liveness.transport is transport else None

    # --- plumbing ---------------------------------------------------------------------------

    async def _in_thread(self, work: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """Run blocking work in the pool's threads. On cancellation, tell the work to stop (cancel flag)."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if cancel is not None:
                cancel.set()
            future.add_done_callback(retrieve_outcome)
            raise

    def _count_command(self, host: HostConfig, output: CommandOutput) -> None:
        self.stats.commands += 1
        self.stats.command_timeouts += int(output.timed_out)
        self.stats.truncated_outputs += int(output.truncated)
        if output.timed_out:
            outcome = "timeout"
        elif output.exit_code == 0:
            outcome = "ok"
        else:
            outcome = "nonzero"
        self._emit(SshEvent("command", host.node, outcome, output.duration_s, truncated=output.truncated))

    def _emit(self, event: SshEvent) -> None:
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event(event)

