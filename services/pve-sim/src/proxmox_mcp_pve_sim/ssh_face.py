"""The SSH face: key and password auth, an emulated host shell, and direct-tcpip to the API only.

One listener per node (the first on --ssh-port); each answers as that node's shell. Port
forwarding is allowed only to the simulator's own HTTPS port on the loopback address, with 8006
accepted as an alias, so a tunnel to "the host's 127.0.0.1:8006" works like on a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import Any, cast

import asyncssh
from asyncssh.constants import OPEN_ADMINISTRATIVELY_PROHIBITED

from proxmox_mcp_pve_sim.host_shell import host_shell
from proxmox_mcp_pve_sim.shell import ShellEnv, Streams, run_line
from proxmox_mcp_pve_sim.sim import Sim

log = logging.getLogger("pve-sim.ssh")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "ip6-localhost"}
PVE_API_PORT = 8006
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15}


def _writer(chan: asyncssh.SSHServerChannel[str]) -> Callable[[str], None]:
    """chan.write, typed: asyncssh's SSHServerChannel derives from an unparameterised SSHChannel, so the type
    checker loses the str of SSHServerChannel[str] on write."""
    return cast(Callable[[str], None], chan.write)  # pyright: ignore[reportUnknownMemberType]


class SshFace:
    def __init__(
        self, sim: Sim, *, host_key: asyncssh.SSHKey, client_key: asyncssh.SSHKey, api_port: int, user: str = "root"
    ) -> None:
        self.sim = sim
        self.host_key = host_key
        self.client_key = client_key
        self.api_port = api_port
        self.user = user
        self.servers: list[asyncssh.SSHAcceptor] = []
        self.connections: set[asyncssh.SSHServerConnection] = set()

    async def listen(self, host: str, port: int, node: str) -> int:
        server = await asyncssh.create_server(
            lambda: _Server(self, node),
            host,
            port,
            server_host_keys=[self.host_key],
            allow_scp=False,
            sftp_factory=None,
            line_editor=False,
            login_timeout=30,
            keepalive_interval=0,
            server_version="OpenSSH_9.2p1 Debian-2+deb12u3",
        )
        self.servers.append(server)
        return server.get_port()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.connections):
            connection.abort()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 0.5)

    def password_ok(self, username: str, password: str) -> bool:
        expected = self.sim.access.root_password
        return username == self.user and hmac.compare_digest(password.encode(), expected.encode())

    def key_ok(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.user and key.public_data == self.client_key.public_data


class _Server(asyncssh.SSHServer):
    def __init__(self, face: SshFace, node: str) -> None:
        self.face = face
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.face.connections.add(conn)
        if not self._online():
            conn.abort()  # the node is down: nothing answers on its SSH port

    def _online(self) -> bool:
        node = self.face.sim.cluster.nodes.get(self.node)
        return node is None or node.answers

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.face.connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self.face.password_ok(username, password)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self.face.key_ok(username, key)

    def session_requested(self) -> asyncssh.SSHServerSession[str] | bool:
        if not self._online():
            if self.conn is not None:
                self.conn.abort()  # a connection opened before the node went down breaks with it
            return False
        return _Session(host_shell(self.face.sim, self.node))

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        if dest_host.lower() in LOOPBACK and dest_port in (self.face.api_port, PVE_API_PORT):
            return _forwarder(self.face.api_port)
        log.info("refused direct-tcpip to %s:%s", dest_host, dest_port)
        raise asyncssh.ChannelOpenError(
            OPEN_ADMINISTRATIVELY_PROHIBITED, "pve-sim forwards only to its own API port on 127.0.0.1"
        )

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False


def _forwarder(api_port: int) -> Any:
    async def forward(reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> None:
        # asyncssh closes the whole SSH connection when a channel handler raises, so one broken
        # tunnel must never escape from here and take the client's other channels with it.
        try:
            await _pump_both_ways(api_port, reader, writer)
        except Exception:
            log.info("a forwarded connection ended with an error", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return forward


async def _pump_both_ways(api_port: int, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", api_port)
    except OSError:
        return

    async def pump_down() -> None:
        with contextlib.suppress(Exception):
            while data := await upstream_reader.read(65536):
                writer.write(data)
        with contextlib.suppress(Exception):
            writer.write_eof()

    down = asyncio.create_task(pump_down())
    try:
        while data := await reader.read(65536):
            upstream_writer.write(data)
            await upstream_writer.drain()
        if upstream_writer.can_write_eof():
            upstream_writer.write_eof()
        await down
    finally:
        down.cancel()
        with contextlib.suppress(Exception):
            upstream_writer.close()


class _Session(asyncssh.SSHServerSession[str]):
    """One exec (or a line-by-line interactive shell) on the emulated host."""

    def __init__(self, env: ShellEnv) -> None:
        self.env = env
        self.chan: asyncssh.SSHServerChannel[str] | None = None
        self.command: str | None = None
        self.interactive = False
        self.pty = False
        self.task: asyncio.Task[Any] | None = None
        self.buffer = ""
        self.last_char = ""
        self.signal: str | None = None
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.shell_loop: asyncio.Task[None] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[str]) -> None:  # type: ignore[override]
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.pty = True
        return True

    def shell_requested(self) -> bool:
        self.interactive = True
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False

    def session_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self.command is not None:
            self.task = loop.create_task(self._run_exec(self.command))
        elif self.interactive:
            self.lines = asyncio.Queue()
            self.shell_loop = loop.create_task(self._shell_loop())

    async def _run_exec(self, command: str) -> None:
        chan = self.chan
        assert chan is not None
        try:
            status = await run_line(command, self.env, Streams(_writer(chan), chan.write_stderr))
        except asyncio.CancelledError:
            if self.signal is not None and not chan.is_closing():
                chan.exit_with_signal(self.signal)
            return
        except BrokenPipeError:
            return
        except Exception as exc:  # an emulation bug must still end the channel
            log.exception("command failed in the emulated shell")
            if not chan.is_closing():
                chan.write_stderr(f"pve-sim: internal error: {exc}\n")
            status = 1
        if not chan.is_closing():
            chan.exit(status)

    def _write(self, text: str) -> None:
        if self.chan is not None and not self.chan.is_closing():
            _writer(self.chan)(text)

    def _prompt(self) -> None:
        self._write(f"root@{self.env.node}:~# ")

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        if not self.interactive:
            return
        for char in data:
            if char in "\r\n":
                if char == "\n" and self.last_char == "\r":
                    self.last_char = char
                    continue
                if self.pty:
                    self._write("\r\n")
                self.lines.put_nowait(self.buffer)
                self.buffer = ""
            elif char == "\x03":
                self.buffer = ""
                if self.task is not None and not self.task.done():
                    self.task.cancel()
                else:
                    self._write("^C\r\n")
                    self._prompt()
            elif char == "\x04" and not self.buffer:
                self.lines.put_nowait(None)
            elif char in "\x7f\b":
                if self.buffer:
                    self.buffer = self.buffer[:-1]
                    if self.pty:
                        self._write("\b \b")
            else:
                self.buffer += char
                if self.pty:
                    self._write(char)
            self.last_char = char

    async def _shell_loop(self) -> None:
        self._write(f"Linux {self.env.node} (pve-sim): commands are emulated, nothing runs on this machine.\r\n")
        newline = "\r\n" if self.pty else "\n"
        chan = self.chan
        assert chan is not None
        streams = Streams(
            lambda t: self._write(t.replace("\n", newline)),
            lambda t: chan.write_stderr(t.replace("\n", newline)) if not chan.is_closing() else None,
        )
        while True:
            self._prompt()
            line = await self.lines.get()
            if line is None:
                self._exit(0)
                return
            words = line.split()
            if words[:1] in (["exit"], ["logout"]):
                self._exit(int(words[1]) if len(words) > 1 and words[1].isdigit() else 0)
                return
            if not words:
                continue
            running = asyncio.get_running_loop().create_task(run_line(line, self.env, streams))
            self.task = running
            try:
                await running
            except asyncio.CancelledError:
                if self.chan is None or self.chan.is_closing():
                    return
                self._write("^C" + newline)
            except Exception:
                log.exception("command failed in the emulated shell")

    def _exit(self, status: int) -> None:
        if self.chan is not None and not self.chan.is_closing():
            self.chan.exit(status)

    def eof_received(self) -> bool:
        """The client closed stdin; keep the channel half-open so output and the exit status still go out."""
        if self.interactive:
            self.lines.put_nowait(None)
        return True

    def signal_received(self, signal: str) -> None:
        name = signal.upper().removeprefix("SIG")
        if name in SIGNALS and self.task is not None and not self.task.done():
            self.signal = name
            self.task.cancel()

    def break_received(self, msec: int) -> bool:
        self.signal_received("INT")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        for task in (self.task, self.shell_loop):
            if task is not None and not task.done():
                task.cancel()
