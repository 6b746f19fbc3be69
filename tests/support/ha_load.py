"""Mixed MCP traffic through Caddy with every call's outcome on record, for the fault tests and bench/soak.py.

Clients are the official MCP client, each on its own token and connection:
- 2026-era clients (stateless): reads (list_vms, vm_status, node_status) and changes with idempotency keys:
  vm_action with wait on a VM the client owns (start when stopped, stop when running), execute_command;
- legacy-era clients (an `initialize` session on one gateway): reads. When their gateway is gone, the next call
  fails with the SDK's "Session not found"/"Session terminated"; the client then starts a new session (as a
  user's client must: the official client does not do it by itself) and goes on. That is recorded as
  `session_lost`, not as a failed call.

An outcome is `ok`, a tool error's code (with `retryable`), `session_lost`, or `transport` (no MCP answer: the
HTTP exchange broke, e.g. a gateway killed under the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support.mcp_client import http_client

READS = ("list_vms", "vm_status", "node_status")
LEGACY_READS = ("list_vms", "node_status")
SESSION_LOST = ("Session not found", "Session terminated")


@dataclass(frozen=True)
class Call:
    client: str
    era: str
    """"2026" or "legacy"."""
    tool: str
    mutation: bool
    started: float
    """time.monotonic()"""
    ended: float
    code: str
    """"ok", an error code of ours, "session_lost" or "transport"."""
    retryable: bool | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.ended >= start


@dataclass(frozen=True)
class Guest:
    vmid: int
    node: str


@dataclass
class LoadPlan:
    url: str
    """Caddy's /mcp."""
    verify: ssl.SSLContext
    tokens: Sequence[str]
    """One per client: modern clients first, then legacy ones."""
    guests: Sequence[Guest]
    """QEMU guests: 2026-era client n changes guests[n] only (no guest: it reads and runs commands)."""
    modern: int = 3
    legacy: int = 1
    mutations: bool = True
    pause: float = 0.0
    """Seconds between two calls of one client (0: back to back)."""


@dataclass
class MixedLoad:
    plan: LoadPlan
    calls: list[Call] = field(default_factory=list[Call])
    reinitialised: list[float] = field(default_factory=list[float])
    """When a legacy client started a new session after losing its own."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list[asyncio.Task[None]])

    async def __aenter__(self) -> MixedLoad:
        plan = self.plan
        needed = plan.modern + plan.legacy
        assert len(plan.tokens) >= needed, f"{needed} clients need as many tokens"
        for n in range(plan.modern):
            self._tasks.append(asyncio.create_task(self._modern(n)))
        for n in range(plan.legacy):
            self._tasks.append(asyncio.create_task(self._legacy(n)))
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self, within: float = 60.0) -> list[Call]:
        """Let every call under way finish (a call that never returns fails the caller here), then stop."""
        self._stop.set()
        done, pending = await asyncio.wait(self._tasks, timeout=within) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        assert not pending, f"{len(pending)} clients still had a call under way {within} s after the load stopped"
        return self.calls

    def count(self, *, ok: bool | None = None, since: float = float("-inf")) -> int:
        return sum(1 for c in self.calls if c.started >= since and (ok is None or c.ok == ok))

    async def wait_for(self, calls: int, *, since: float = float("-inf"), within: float = 60.0) -> None:
        """Until `calls` calls that started after `since` succeeded."""
        deadline = time.monotonic() + within
        while self.count(ok=True, since=since) < calls:
            assert time.monotonic() < deadline, (
                f"only {self.count(ok=True, since=since)} of {calls} calls succeeded within {within} s: "
                f"{[(c.tool, c.code, c.message[:120]) for c in self.calls if not c.ok][-5:]}")
            await asyncio.sleep(0.05)

    # --- clients ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self, token: str, mode: str) -> AsyncIterator[Client]:
        async with http_client(self.plan.url, token, mode=mode, verify=self.plan.verify) as client:
            yield client

    async def _modern(self, n: int) -> None:
        name, token = f"2026-{n}", self.plan.tokens[n]
        guest = self.plan.guests[n] if self.plan.mutations and n < len(self.plan.guests) else None
        step = 0
        while not self._stop.is_set():
            try:
                async with self._session(token, "auto") as client:
                    while not self._stop.is_set():
                        await self._one(client, name, "2026", self._modern_call(step, guest))
                        step += 1
                        await asyncio.sleep(self.plan.pause)
            except Exception as exc:  # the client itself broke (its connect): note it, then a new one
                self._note(name, "2026", "connect", False, time.monotonic(), "transport", None, _describe(exc))
                await asyncio.sleep(0.2)

    def _modern_call(self, step: int, guest: Guest | None) -> tuple[str, dict[str, Any], bool]:
        """Two reads, then vm_action on the client's guest, then execute_command, and again."""
        phase = step % 4
        if self.plan.mutations and phase == 2 and guest is not None:
            return "vm_action", {"vmid": guest.vmid, "node": guest.node, "action": "toggle"}, True
        if self.plan.mutations and phase == 3:
            return "execute_command", {"command": "uptime", "idempotency_key": uuid.uuid4().hex}, True
        tool = READS[step % len(READS)]
        if tool == "vm_status" and self.plan.guests:
            target = self.plan.guests[step % len(self.plan.guests)]
            return tool, {"vmid": target.vmid, "node": target.node}, False
        return tool, {}, False

    async def _legacy(self, n: int) -> None:
        name, token = f"legacy-{n}", self.plan.tokens[self.plan.modern + n]
        step = 0
        while not self._stop.is_set():
            try:
                async with self._session(token, "legacy") as client:
                    while not self._stop.is_set():
                        call = await self._one(client, name, "legacy", (LEGACY_READS[step % 2], {}, False))
                        step += 1
                        if call.code == "session_lost":
                            break  # a new session: initialize again
                        await asyncio.sleep(self.plan.pause)
                if not self._stop.is_set():
                    self.reinitialised.append(time.monotonic())
            except Exception as exc:
                self._note(name, "legacy", "initialize", False, time.monotonic(), "transport", None, _describe(exc))
                await asyncio.sleep(0.2)

    async def _one(self, client: Client, name: str, era: str, call: tuple[str, dict[str, Any], bool]) -> Call:
        tool, args, mutation = call
        started = time.monotonic()
        try:
            if tool == "vm_action":
                status = await client.call_tool("vm_status", {"vmid": args["vmid"], "node": args["node"]})
                if status.is_error or not status.structured_content:
                    return self._result(name, era, "vm_status", False, started, status)
                running = status.structured_content.get("status") == "running"
                args = {**args, "action": "stop" if running else "start", "wait": True, "confirm": True,
                        "idempotency_key": uuid.uuid4().hex}
                started = time.monotonic()
            result = await client.call_tool(tool, args)
        except MCPError as exc:
            text = str(exc)
            code = "session_lost" if any(s in text for s in SESSION_LOST) else "transport"
            return self._note(name, era, tool, mutation, started, code, None, text)
        except Exception as exc:
            return self._note(name, era, tool, mutation, started, "transport", None, _describe(exc))
        return self._result(name, era, tool, mutation, started, result)

    def _result(self, name: str, era: str, tool: str, mutation: bool, started: float, result: Any) -> Call:
        if not result.is_error:
            return self._note(name, era, tool, mutation, started, "ok", None, "")
        error = result.structured_content or {}
        text = " ".join(getattr(block, "text", "") for block in result.content)
        return self._note(name, era, tool, mutation, started, str(error.get("code") or "unknown"),
                          error.get("retryable"), str(error.get("message") or text))

    def _note(self, name: str, era: str, tool: str, mutation: bool, started: float, code: str,
              retryable: bool | None, message: str) -> Call:
        call = Call(client=name, era=era, tool=tool, mutation=mutation, started=started, ended=time.monotonic(),
                    code=code, retryable=retryable, message=message)
        self.calls.append(call)
        return call


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
