# pyright: strict
"""Is the host still answering? A probe that wants a reply, on a pooled connection while commands run.

paramiko's own keepalive wants no reply, and a frozen or cut-off host's kernel may still ACK TCP, so a
command there would wait for its full timeout. Instead, every `interval` seconds while a command runs, the
pool sends OpenSSH's `keepalive@openssh.com` global request with want_reply set; any server answers it
(OpenSSH with a failure: it is unknown to it, and that is an answer). `misses` probes in a row without an
answer, each given an interval, mean the host stopped answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import paramiko
from paramiko.common import MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS, cMSG_GLOBAL_REQUEST
from paramiko.message import Message

PROBE_REQUEST = "keepalive@openssh.com"


@dataclass(frozen=True)
class LivenessPolicy:
    interval: float = 5.0
    """Seconds between probes while a command runs; 0 turns probing off."""
    misses: int = 3
    """Unanswered probes in a row that mean the host is gone (so it is noticed after about interval * misses)."""

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    @property
    def window(self) -> float:
        return self.interval * self.misses


class HostNotAnswering(Exception):
    """The host left `misses` probes in a row unanswered; the pool names the node and drops the connection."""

    def __init__(self, transport: paramiko.Transport, policy: LivenessPolicy) -> None:
        super().__init__(f"no answer to {policy.misses} SSH keepalive probes in {policy.window:g}s")
        self.transport = transport
        self.policy = policy


class HostLiveness:
    """Probes for one transport, shared by every command running on it (any thread)."""

    def __init__(
        self, transport: paramiko.Transport, policy: LivenessPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.transport = transport
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._sent = 0
        self._answered = 0
        self._last_sent: float | None = None
        _count_answers(transport, self._on_answer)

    @property
    def unanswered(self) -> int:
        with self._lock:
            return max(self._sent - self._answered, 0)

    def check(self) -> None:
        """Send a probe when one is due; raise HostNotAnswering once `misses` probes had an interval each to be
        answered and none was. Cheap to call often (the command loop calls it every poll)."""
        if not self.policy.enabled:
            return
        now = self._clock()
        with self._lock:
            if self._last_sent is not None and now - self._last_sent < self.policy.interval:
                return
            if self._sent - self._answered >= self.policy.misses:
                raise HostNotAnswering(self.transport, self.policy)
            self._sent += 1
            self._last_sent = now
        _send_probe(self.transport)

    def _on_answer(self) -> None:
        with self._lock:
            # Replies to global requests come in order and the pool sends no other global request that wants
            # one, so any reply answers our oldest outstanding probe.
            self._answered = min(self._answered + 1, self._sent)


def _send_probe(transport: paramiko.Transport) -> None:
    message = Message()
    message.add_byte(cMSG_GLOBAL_REQUEST)
    message.add_string(PROBE_REQUEST)
    message.add_boolean(True)
    # A dead transport: the command loop notices it by itself, and an unsent probe stays unanswered.
    with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
        transport._send_user_message(message)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]


def _count_answers(transport: paramiko.Transport, on_answer: Callable[[], None]) -> None:
    """Call on_answer for each global-request reply, then let paramiko handle it as before. paramiko builds its
    handler table per instance "for easier per-instance manipulation" (transport.py), which this relies on."""
    table = cast(dict[int, Callable[[Message], None]], transport._handler_table)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    for kind in (MSG_REQUEST_SUCCESS, MSG_REQUEST_FAILURE):
        original = table[kind]

        def counted(message: Message, original: Callable[[Message], None] = original) -> None:
            on_answer()
            original(message)

        table[kind] = counted
