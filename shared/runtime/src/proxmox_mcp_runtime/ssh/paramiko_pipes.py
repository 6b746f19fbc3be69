"""Make paramiko's channel wake-up pipes safe to close while the transport thread feeds data.

`Channel.fileno()` (what `select()` on a channel uses) creates a pipe that the transport thread writes a
byte to whenever data arrives. paramiko's `PosixPipe` does not lock `set()` against `close()`: when a
channel is closed while data for it is still arriving (a TLS session ticket through a tunnel, the end of a
command's output), the transport thread can write to an fd that was just closed, or whose number now
belongs to another file. The OSError that follows (EBADF, EPIPE) is caught by the transport's main loop,
which then ends the whole SSH connection, failing every other channel on it. Open upstream: paramiko
issues #1700 and #2271, pull request #2274.

install() swaps in a locked pipe for every channel created afterwards. It changes paramiko for the whole
process, so importing this module does nothing by itself: each entry point that opens SSH channels (the
ssh-worker, the api-worker, `proxmox-mcp doctor`) calls install() once at start.
"""

from __future__ import annotations

import os
import sys
import threading

import paramiko.pipe


class LockedPosixPipe:
    """paramiko's PosixPipe interface, with set/clear/close serialized and closed fds never touched again."""

    def __init__(self) -> None:
        self._rfd, self._wfd = os.pipe()
        self._set = False
        self._forever = False
        self._closed = False
        self._guard = threading.Lock()

    def fileno(self) -> int:
        return self._rfd

    def close(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
            os.close(self._rfd)
            os.close(self._wfd)

    def set(self) -> None:
        with self._guard:
            if self._set or self._closed:
                return
            self._set = True
            os.write(self._wfd, b"*")

    def set_forever(self) -> None:
        self._forever = True
        self.set()

    def clear(self) -> None:
        with self._guard:
            if not self._set or self._forever or self._closed:
                return
            os.read(self._rfd, 1)
            self._set = False


def _make_pipe() -> LockedPosixPipe:
    return LockedPosixPipe()


def install() -> None:
    """Give every paramiko channel created from now on the locked pipe (process-wide: paramiko has no hook per
    transport). Idempotent; a no-op on Windows, whose socket-based pipe paramiko handles differently."""
    if sys.platform != "win32":
        paramiko.pipe.make_pipe = _make_pipe  # type: ignore[assignment]
