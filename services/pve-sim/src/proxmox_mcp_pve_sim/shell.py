"""An emulated shell: parses a command line with shlex and runs emulated commands. Never executes anything.

Supports `;`, `&&`, `||` and `|` between commands; redirections and background jobs are refused.
The same shell serves the SSH face (the host), `pct exec` and the guest agent (inside a guest); what it
can run is the command table its environment carries (`host_shell.py`, `guest_shell.py`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from proxmox_mcp_pve_sim.model import Guest
from proxmox_mcp_pve_sim.sim import Sim

OPERATORS = {";", "&&", "||", "|"}
REFUSED = {">", ">>", "<", "<<", "&", ">&", "<&", "|&", "&>", ";;", "<<<", ">|"}
BIN_DIRS = ("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/")


@dataclass
class Streams:
    """Where a command writes; `stdin` is what an upstream pipe produced."""

    write_out: Callable[[str], None]
    write_err: Callable[[str], None]
    stdin: str = ""

    def out(self, text: str) -> None:
        if text:
            self.write_out(text)

    def err(self, text: str) -> None:
        if text:
            self.write_err(text)


Command = Callable[[list[str], "ShellEnv", Streams], Awaitable[int]]


@dataclass
class ShellEnv:
    """Where the shell runs: a node (`guest` None) or inside a guest on that node."""

    sim: Sim
    node: str
    commands: Mapping[str, Command]
    """What this shell can run, by name (a guest has no Proxmox CLI)."""
    guest: Guest | None = None
    user: str = "root"
    cwd: str = "/root"
    env: dict[str, str] = field(default_factory=dict[str, str])

    @property
    def hostname(self) -> str:
        return self.guest.name if self.guest is not None else self.node

    @property
    def on_host(self) -> bool:
        return self.guest is None


class ShellSyntaxError(ValueError):
    pass


def tokenize(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise ShellSyntaxError(str(exc)) from None


def split_sequence(tokens: list[str]) -> list[tuple[str, list[list[str]]]]:
    """[(operator before, pipeline as list of argv)], operator of the first entry is ';'."""
    sequence: list[tuple[str, list[list[str]]]] = []
    pipeline: list[list[str]] = []
    argv: list[str] = []
    op = ";"
    for token in tokens:
        if token in REFUSED:
            raise ShellSyntaxError(f"'{token}': redirections and background jobs are not supported by pve-sim")
        if token in OPERATORS:
            if not argv:
                raise ShellSyntaxError(f"syntax error near unexpected token `{token}'")
            pipeline.append(argv)
            argv = []
            if token != "|":
                sequence.append((op, pipeline))
                pipeline, op = [], token
            continue
        argv.append(token)
    if argv:
        pipeline.append(argv)
    elif pipeline or op != ";":
        raise ShellSyntaxError("syntax error: unexpected end of file")
    if pipeline:
        sequence.append((op, pipeline))
    return sequence


async def run_line(line: str, env: ShellEnv, streams: Streams) -> int:
    """Run one command line as `bash -c LINE` would; returns the exit status."""
    try:
        sequence = split_sequence(tokenize(line))
    except ShellSyntaxError as exc:
        streams.err(f"bash: -c: line 1: {exc}\n")
        return 2
    status = 0
    for op, pipeline in sequence:
        if (op == "&&" and status != 0) or (op == "||" and status == 0):
            continue
        expanded = [[expand(arg, env, status) for arg in argv] for argv in pipeline]
        status = await run_pipeline(expanded, env, streams)
    return status


_VARIABLE = re.compile(r"\$(\?|\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)")


def expand(arg: str, env: ShellEnv, last_status: int) -> str:
    """`$?` and a few environment variables; quoting is not tracked (shlex already removed it)."""
    if "$" not in arg:
        return arg
    variables = {
        "HOME": "/root",
        "USER": env.user,
        "LOGNAME": env.user,
        "HOSTNAME": env.hostname,
        "PWD": env.cwd,
        "SHELL": "/bin/bash",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        **env.env,
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        return str(last_status) if name == "?" else variables.get(name, "")

    return _VARIABLE.sub(replace, arg)


async def run_pipeline(pipeline: list[list[str]], env: ShellEnv, streams: Streams) -> int:
    data = streams.stdin
    status = 0
    for index, argv in enumerate(pipeline):
        last = index == len(pipeline) - 1
        if last:
            status = await run_argv(argv, env, Streams(streams.write_out, streams.write_err, data))
        else:
            captured: list[str] = []
            status = await run_argv(argv, env, Streams(captured.append, streams.write_err, data))
            data = "".join(captured)
    return status


async def run_argv(argv: list[str], env: ShellEnv, streams: Streams) -> int:
    """Run one command given as argv (no shell parsing), as the guest agent does."""
    if not argv:
        return 0
    name = argv[0]
    for prefix in BIN_DIRS:
        if name.startswith(prefix) and name[len(prefix) :] in env.commands:
            name = name[len(prefix) :]
            break
    func = env.commands.get(name)
    if func is None:
        if "/" in argv[0]:
            streams.err(f"bash: {argv[0]}: No such file or directory\n")
        else:
            streams.err(f"bash: {argv[0]}: command not found\n")
        return 127
    return await func(argv, env, streams)
