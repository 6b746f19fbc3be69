"""Running one command on an open transport (blocking; the pool runs this in a worker thread)."""

from __future__ import annotations

import contextlib
import select
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

from proxmox_mcp_runtime.ssh.liveness import HostLiveness, HostNotAnswering

_READ_CHUNK = 65536
_POLL = 0.25
"""Longest wait between checks of the deadline and the cancel flag."""
_SESSION_RETRY_WINDOW = 3.0


@dataclass(frozen=True)
class CommandOutput:
    exit_code: int | None
    """None when the command was killed by a signal or did not finish."""
    stdout: bytes
    stderr: bytes
    truncated: bool
    """The combined stdout+stderr went past max_output: the rest was read and discarded."""
    duration_s: float
    timed_out: bool


class ChannelOpenFailed(Exception):
    """No channel could be opened, so nothing ran: the pool may reconnect and try again."""


def command_line(command: str | Sequence[str], *, timeout: float, wrap: bool, kill_after: float) -> str:
    """The line the remote shell runs. A list argv is quoted with shlex.join so the shell rebuilds it exactly.

    With wrap, a remote `timeout` ends the process group even if the SSH signal request is ignored; it
    fires one second after the local deadline, which sends the signal first. `exec` keeps it the session
    leader: a shell that forks it instead (dash) would leave it in a process group the signal misses.
    """
    if isinstance(command, str):
        inner = shlex.join(["sh", "-c", command]) if wrap else command
    else:
        if not command:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "empty command")
        inner = shlex.join(command)
    if not wrap:
        return inner
    return f"exec timeout --signal=TERM --kill-after={kill_after:g} {timeout + 1:g} {inner}"


def _send_while_open(channel: paramiko.Channel, message: Message | None) -> None:
    """Send a channel message unless the channel is closed, holding the channel's lock while sending.

    paramiko builds messages under the lock but sends them after releasing it, so an EOF or signal
    could go out *after* the CLOSE its transport thread sends in reply to the server's CLOSE; sshd then
    drops the whole connection ("packet referred to nonexistent channel"). The transport thread takes
    the same lock before answering a CLOSE, so holding it keeps our message first.
    """
    with channel.lock:
        if channel.closed or message is None:
            return
        channel.transport._send_user_message(message)  # pyright: ignore[reportOptionalMemberAccess, reportAttributeAccessIssue, reportUnknownMemberType]


def send_signal(channel: paramiko.Channel, name: str) -> None:
    """RFC 4254 'signal' request (paramiko has no API for it); sshd delivers it to the session's process group."""
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    _send_while_open(channel, message)


def send_stdin_eof(channel: paramiko.Channel) -> None:
    """Channel.shutdown_write() without its race against the server's CLOSE (see _send_while_open)."""
    with channel.lock:
        if channel.closed or channel.eof_sent:
            return
        message: Message = channel._send_eof()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
        channel.transport._send_user_message(message)  # pyright: ignore[reportOptionalMemberAccess, reportAttributeAccessIssue, reportUnknownMemberType]


def open_channel(transport: paramiko.Transport, timeout: float) -> paramiko.Channel:
    """A new session channel. Raises ChannelOpenFailed only when the connection itself is gone or hung.

    sshd frees a session slot a round trip after the previous channel closed, so a refusal (MaxSessions)
    is retried briefly: nothing ran, so trying again is safe. paramiko reports a refusal through one
    transport-wide exception slot that concurrent opens can consume, so a plain SSHException on a
    transport that is still active is a refusal too, not a dead connection.
    """
    delay = 0.005
    give_up = time.monotonic() + min(timeout, _SESSION_RETRY_WINDOW)
    while True:
        if not transport.is_active():
            raise ChannelOpenFailed("transport is not active")
        started = time.monotonic()
        try:
            return transport.open_session(timeout=timeout)
        except (EOFError, OSError) as exc:
            raise ChannelOpenFailed(str(exc)) from None
        except paramiko.SSHException as exc:
            hung = time.monotonic() - started >= timeout
            if hung or not transport.is_active():
                raise ChannelOpenFailed(str(exc)) from None
            reason = f"{exc.text or exc.code}" if isinstance(exc, paramiko.ChannelException) else str(exc)
            if time.monotonic() + delay > give_up:
                raise ServiceFailure(
                    ErrorCode.UNAVAILABLE, f"the host refused a new SSH session ({reason})", retryable=True
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def run_on_transport(
    transport: paramiko.Transport,
    command: str,
    *,
    timeout: float,
    max_output: int,
    open_timeout: float,
    cancel: threading.Event,
    kill_signal: str = "TERM",
    liveness: HostLiveness | None = None,
) -> CommandOutput:
    """Run command on a new channel; stop it (signal + close) at the deadline or when cancel is set.

    With liveness, the host is probed while the command runs: HostNotAnswering when it stops answering."""
    channel = open_channel(transport, open_timeout)
    started = time.monotonic()
    try:
        channel.fileno()  # creates the pipe select() waits on, before any data can arrive
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError):
            raise ServiceFailure(
                ErrorCode.UNAVAILABLE,
                "the SSH connection failed while starting the command; it may or may not have run",
                retryable=False,
            ) from None
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            send_stdin_eof(channel)  # a command reading stdin must not wait forever
        output = _collect(channel, started, timeout, max_output, cancel, kill_signal, liveness)
        if not output.timed_out:
            _await_remote_close(channel)
        return output
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def _collect(
    channel: paramiko.Channel,
    started: float,
    timeout: float,
    max_output: int,
    cancel: threading.Event,
    kill_signal: str,
    liveness: HostLiveness | None,
) -> CommandOutput:
    stdout = bytearray()
    stderr = bytearray()
    kept = 0
    truncated = False
    deadline = started + timeout

    def keep(data: bytes, into: bytearray) -> None:
        nonlocal kept, truncated
        room = max_output - kept
        if len(data) > room:
            truncated = True
            data = data[: max(room, 0)]
        into += data
        kept += len(data)

    timed_out = False
    while True:
        while channel.recv_ready():
            keep(channel.recv(_READ_CHUNK), stdout)
        while channel.recv_stderr_ready():
            keep(channel.recv_stderr(_READ_CHUNK), stderr)
        finished = channel.closed or (channel.eof_received and channel.exit_status_ready())
        if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
        if liveness is not None:
            try:
                liveness.check()
            except HostNotAnswering:
                with contextlib.suppress(Exception):
                    send_signal(channel, kill_signal)  # read by sshd if the host thaws before it sees us go
                raise
        left = deadline - time.monotonic()
        if left <= 0 or cancel.is_set():
            timed_out = True
            with contextlib.suppress(Exception):
                send_signal(channel, kill_signal)
            break
        wait = min(left, _POLL)
        if channel.eof_received:
            # After EOF the select pipe stays readable; wait for the exit status instead of spinning.
            channel.status_event.wait(wait)
        else:
            select.select([channel], [], [], wait)
    exit_code: int | None = None
    if not timed_out:
        # paramiko keeps -1 until an exit-status arrives (an exit-signal leaves it there too).
        if channel.exit_status < 0 and not _transport_alive(channel):
            raise ServiceFailure(
                ErrorCode.UNAVAILABLE,
                "the SSH connection was lost while the command ran; its outcome is unknown",
                retryable=False,
            )
        exit_code = channel.exit_status if channel.exit_status >= 0 else None
    return CommandOutput(
        exit_code=exit_code,
        stdout=bytes(stdout),
        stderr=bytes(stderr),
        truncated=truncated,
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
    )


def _transport_alive(channel: paramiko.Channel) -> bool:
    transport = channel.transport  # what get_transport() returns; None for a channel never opened
    return transport is not None and transport.is_active()


def _await_remote_close(channel: paramiko.Channel, limit: float = 0.5) -> None:
    """sshd sends close right after exit-status; waiting for it (usually already here) frees its session slot
    before ours is reused, instead of racing MaxSessions."""
    give_up = time.monotonic() + limit
    while not channel.closed and time.monotonic() < give_up and _transport_alive(channel):
        time.sleep(0.001)
