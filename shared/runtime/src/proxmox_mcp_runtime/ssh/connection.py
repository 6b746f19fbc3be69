"""Opening one authenticated SSH transport (blocking; the pool runs this in a worker thread)."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

import paramiko
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

from proxmox_mcp_runtime.ssh.trust import HostKeyRefused, HostKeyVerifier


@dataclass(frozen=True)
class Target:
    """Where to connect and what to call it in messages (the node name, never the address)."""

    node: str
    address: str
    port: int


@dataclass(frozen=True)
class Credentials:
    user: str
    key: paramiko.PKey | None
    password: str | None


class ConnectFailed(ServiceFailure):
    """Connecting or authenticating failed; `outcome` is the metrics label (unreachable, timeout, ...)."""

    def __init__(self, code: ErrorCode, message: str, *, outcome: str, retryable: bool) -> None:
        super().__init__(code, message, retryable=retryable)
        self.outcome = outcome


def open_socket(target: Target, timeout: float) -> socket.socket:
    """A connected TCP socket with TCP_NODELAY: paramiko never sets it, and without it each exec waits ~40 ms."""
    try:
        sock = socket.create_connection((target.address, target.port), timeout=timeout)
    except TimeoutError:
        raise ConnectFailed(
            ErrorCode.UNAVAILABLE, f"node {target.node} did not answer on its SSH port within {timeout:g}s",
            outcome="timeout", retryable=True,
        ) from None
    except ConnectionRefusedError:
        raise ConnectFailed(
            ErrorCode.UNAVAILABLE, f"node {target.node} refused the SSH connection (is sshd running?)",
            outcome="unreachable", retryable=True,
        ) from None
    except socket.gaierror:
        raise ConnectFailed(
            ErrorCode.UNAVAILABLE, f"the SSH address of node {target.node} does not resolve",
            outcome="unreachable", retryable=True,
        ) from None
    except OSError as exc:
        raise ConnectFailed(
            ErrorCode.UNAVAILABLE, f"cannot reach node {target.node} by SSH ({exc.strerror or type(exc).__name__})",
            outcome="unreachable", retryable=True,
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _authenticate(transport: paramiko.Transport, target: Target, credentials: Credentials) -> None:
    tried: list[str] = []
    if credentials.key is not None:
        tried.append("publickey")
        with contextlib.suppress(paramiko.AuthenticationException):
            transport.auth_publickey(credentials.user, credentials.key)
    if not transport.is_authenticated() and credentials.password is not None:
        tried.append("password")
        with contextlib.suppress(paramiko.AuthenticationException):
            transport.auth_password(credentials.user, credentials.password)
    if transport.is_authenticated():
        return
    if not tried:
        raise ConnectFailed(
            ErrorCode.UNAVAILABLE,
            "SSH is misconfigured: no credentials (set ssh.key_path or ssh.password / SSH_KEY_PATH or SSH_PASSWORD)",
            outcome="auth_failed", retryable=False,
        )
    raise ConnectFailed(
        ErrorCode.UPSTREAM_ERROR,
        f"node {target.node} refused SSH login for user {credentials.user} (tried: {', '.join(tried)})",
        outcome="auth_failed", retryable=False,
    )


def open_transport(
    target: Target,
    credentials: Credentials,
    verifier: HostKeyVerifier,
    *,
    timeout: float,
    keepalive_interval: int,
) -> paramiko.Transport:
    """Connect, check the host key, authenticate. Raises ConnectFailed (or HostKeyRefused) with a clear message."""
    sock = open_socket(target, timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.auth_timeout = timeout
        options = transport.get_security_options()
        preferred = verifier.preferred_algorithms(target.address, target.port, tuple(options.key_types))
        if preferred is not None:
            options.key_types = preferred
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectFailed(
                ErrorCode.UNAVAILABLE,
                f"SSH handshake with node {target.node} failed ({_reason(exc)})",
                outcome="timeout" if "timeout" in str(exc).lower() else "error", retryable=True,
            ) from None
        try:
            verifier.verify(target.node, target.address, target.port, transport.get_remote_server_key())
        except HostKeyRefused as refused:
            raise ConnectFailed(
                refused.code, refused.info.message, outcome="host_key_mismatch", retryable=False
            ) from None
        try:
            _authenticate(transport, target, credentials)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectFailed(
                ErrorCode.UNAVAILABLE, f"SSH login to node {target.node} failed ({_reason(exc)})",
                outcome="error", retryable=True,
            ) from None
        if keepalive_interval > 0:
            transport.set_keepalive(keepalive_interval)
        return transport
    except BaseException:
        transport.close()
        sock.close()
        raise


def _reason(exc: BaseException) -> str:
    """A short, path-free reason: the exception type plus paramiko's first message line."""
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
