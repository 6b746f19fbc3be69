"""Start real binaries for tests: free ports, log files, readiness polling, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

VENV_BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"


class ProcessDied(RuntimeError):
    """A started binary exited before it was ready."""


def _ephemeral_low() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, below the kernel's ephemeral range: a port from that range can be
    taken by any outgoing connection (another test's client) before the server we start binds it."""
    low = 20000 if _EPHEMERAL_LOW > 21000 else 10000
    for _ in range(200):
        port = random.randrange(low, max(low + 1000, _EPHEMERAL_LOW))
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def find_binary(name: str, *candidates: str | Path) -> str:
    """Locate a binary; skip locally when missing, fail when CI sets PMCP_REQUIRE_BINARIES=1."""
    for candidate in (*candidates, VENV_BIN / name):
        if candidate and Path(candidate).exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    missing_prerequisite(f"{name} is not installed (see .ci/run for how the suite installs it)")


def missing_prerequisite(message: str) -> NoReturn:
    """Something of the machine a test needs (a binary, root) is absent: skip locally, fail when CI sets
    PMCP_REQUIRE_BINARIES=1 (CI runs as root with every binary installed)."""
    if os.environ.get("PMCP_REQUIRE_BINARIES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def start_process(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout_path: Path | None = None,
) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed when we close
    stdout_target = open(stdout_path, "ab") if stdout_path else log_file  # noqa: SIM115
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout_target,
            stderr=log_file,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log_file.close()
        if stdout_path:
            stdout_target.close()
    return Proc(name=name, popen=popen, log_path=log_path)


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, proc: Proc | None = None, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and not proc.alive():
            tail = proc.log_text()[-3000:]
            raise ProcessDied(f"{proc.name} exited with {proc.popen.returncode} before {what}:\n{tail}")
        time.sleep(interval)
    tail = proc.log_text()[-3000:] if proc else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{tail}")


async def wait_until_async(
    condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.02
) -> None:
    """wait_until for coroutines: polls without blocking the event loop, so the awaited work can progress."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def frozen(pids: Sequence[int]) -> Iterator[None]:
    """SIGSTOP our own processes for the block, SIGCONT on the way out whatever happened. A stopped process's
    kernel still accepts and ACKs TCP: to its peers it looks hung (a frozen VM, a stuck host), not gone."""
    stopped: list[int] = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
