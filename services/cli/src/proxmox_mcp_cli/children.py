"""Child processes of the embedded stack: started with their output in log files, stopped for sure."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    # If the supervisor is killed outright (SIGKILL), the kernel still ends its children.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def venv_binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(f"{name} not found next to {sys.executable}; reinstall proxmox-mcp")


class ChildFailed(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


@dataclass
class ChildGroup:
    """Starts children and stops them all, newest first, on exit or error."""

    log_dir: Path
    children: list[Child] = field(default_factory=list[Child])

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              stdout: IO[bytes] | int | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else log_file,
                stderr=log_file,
                env={**os.environ, **(env or {})},
                preexec_fn=_die_with_parent,
                # A terminal's Ctrl-C reaches only the supervisor, which then stops the children in order.
                process_group=0,
            )
        child = Child(name=name, popen=popen, log_path=log_path)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise ChildFailed(f"{child.name} exited with code {child.popen.returncode}:\n{child.log_tail()}")

    def stop_all(self, timeout: float = 10.0) -> None:
        """Newest first, one after another: workers drain while NATS is still up to carry their replies."""
        for child in reversed(self.children):
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.popen.send_signal(signal.SIGTERM)
            try:
                child.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing it", extra={"child": child.name})
                child.popen.kill()
                child.popen.wait(timeout=5)
        self.children.clear()


def read_json_line(child: Child, stream: IO[bytes], timeout: float) -> dict[str, Any]:
    """Wait for the first JSON line a child prints on the pipe we gave it."""
    import selectors

    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                if not child.alive():
                    break
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            if b"\n" in buffer:
                line = buffer.split(b"\n", 1)[0]
                return json.loads(line)
    raise ChildFailed(f"{child.name} did not report ready within {timeout} s:\n{child.log_tail()}")
