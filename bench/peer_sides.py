"""The ways peer_bench calls a server: ours over stdio (both protocol eras) and over /mcp (the official client and
lean_mcp), and canvrno/ProxmoxMCP over stdio. Each gives, per tool pair, functions that make one call each."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from mcp import Client

from bench.lean_mcp import PROTOCOL, lean_client
from bench.peer_pairs import ToolPair
from bench.peer_server import peer_argv, peer_env, write_peer_config
from bench.stack_bench import BenchStack
from tests.support.mcp_client import http_client, stdio_mcp_client
from tests.support.procs import VENV_BIN
from tests.support.services import GatewayProc

Call = Callable[[], Awaitable[None]]


def _tool_of(pair: ToolPair, ours: bool) -> tuple[str, dict[str, Any]]:
    return (pair.ours, pair.ours_args) if ours else (pair.peer, pair.peer_args)


async def _checked_call(client: Client, tool: str, args: dict[str, Any]) -> None:
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")


class Side(Protocol):
    """One way of calling one server."""

    name: str
    ours: bool
    transport: str
    """'stdio' or '/mcp': which of our processes measure the calls."""

    @property
    def server_pid(self) -> int | None:
        """The stdio server process this side alone uses."""
        ...

    @property
    def protocol(self) -> str: ...

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        """in_flight functions making one call each of the pair's tool, to be run concurrently."""
        ...


class StdioSide:
    """A stdio server serves one client: the calls in flight share its session."""

    transport = "stdio"

    def __init__(self, name: str, ours: bool, client: Client, server_pid: int) -> None:
        self.name, self.ours, self.client, self.server_pid = name, ours, client, server_pid

    @property
    def protocol(self) -> str:
        return self.client.protocol_version

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        tool, args = _tool_of(pair, self.ours)
        return [lambda: _checked_call(self.client, tool, args)] * in_flight


class HttpSide:
    """Our /mcp through the official client: one client (its own connection) per call in flight."""

    ours, transport, server_pid = True, "/mcp", None

    def __init__(self, name: str, gateway: GatewayProc, exits: contextlib.AsyncExitStack) -> None:
        self.name, self._gateway, self._exits = name, gateway, exits
        self._clients: list[Client] = []

    @property
    def protocol(self) -> str:
        return self._clients[0].protocol_version if self._clients else "not connected yet"

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        while len(self._clients) < in_flight:
            self._clients.append(await self._exits.enter_async_context(
                http_client(self._gateway.url, self._gateway.token)))
        return [functools.partial(_checked_call, client, pair.ours, pair.ours_args)
                for client in self._clients[:in_flight]]


class LeanSide:
    """Our /mcp through lean_mcp: one keep-alive connection per call in flight, its request prepared. Connections
    are opened (and used once) for each block, before its clock starts: an idle one is closed by the server after
    a few seconds, and the other sides' blocks take longer than that."""

    ours, transport, protocol, server_pid = True, "/mcp", PROTOCOL, None

    def __init__(self, name: str, gateway: GatewayProc, exits: contextlib.AsyncExitStack) -> None:
        self.name, self._gateway = name, gateway
        self._connections = contextlib.AsyncExitStack()
        exits.push_async_callback(self._connections.aclose)

    async def callers(self, pair: ToolPair, in_flight: int) -> list[Call]:
        await self._connections.aclose()
        self._connections = contextlib.AsyncExitStack()
        clients = [await self._connections.enter_async_context(
            lean_client(self._gateway.url, self._gateway.token, pair.ours, pair.ours_args)) for _ in range(in_flight)]
        for client in clients:
            await client.call()
        return [client.call for client in clients]


def _child_pids() -> set[int]:
    mine = str(os.getpid())
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if stat.read_text().rsplit(")", 1)[1].split()[1] == mine:
                children.add(int(stat.parent.name))
    return children


async def _open_stdio(exits: contextlib.AsyncExitStack, name: str, ours: bool, argv: list[str], env: dict[str, str],
                      workdir: Path, mode: str = "auto") -> StdioSide:
    errlog = exits.enter_context((workdir / f"{name.replace(' ', '-')}.stderr").open("w"))
    before = _child_pids()
    client = await exits.enter_async_context(stdio_mcp_client(argv, env, errlog, cwd=workdir, mode=mode))
    (pid,) = _child_pids() - before
    return StdioSide(name, ours, client, pid)


@contextlib.asynccontextmanager
async def opened_sides(stack: BenchStack, peer_python: Path, workdir: Path) -> AsyncIterator[list[Side]]:
    """Ours over stdio (both protocol eras), over /mcp (official and lean clients), and the peer over stdio (it
    speaks the older era only): every client and stdio server ends on exit."""
    sim = stack.sim
    ours_argv = [str(VENV_BIN / "proxmox-mcp"), "stdio"]
    async with contextlib.AsyncExitStack() as exits:
        def ours_env(name: str) -> dict[str, str]:
            return {"NATS_URL": stack.nats.url, "LOG_LEVEL": "WARNING", "PMCP_STATE_DIR": str(workdir / name)}

        config = write_peer_config(workdir / "peer-config.json", sim)
        yield [
            await _open_stdio(exits, "ours stdio", True, ours_argv, ours_env("stdio"), workdir),
            await _open_stdio(exits, "ours stdio old", True, ours_argv, ours_env("stdio-old"), workdir, mode="legacy"),
            HttpSide("ours /mcp", stack.gateway, exits),
            LeanSide("ours /mcp lean", stack.gateway, exits),
            await _open_stdio(exits, "peer stdio", False, peer_argv(peer_python), peer_env(config, sim), workdir),
        ]
