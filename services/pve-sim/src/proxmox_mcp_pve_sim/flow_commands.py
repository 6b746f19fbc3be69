"""Commands that run other commands or wait: sleep, timeout, sh -c, exec, env, which."""

from __future__ import annotations

import asyncio
import dataclasses
import re

from proxmox_mcp_pve_sim.shell import ShellEnv, Streams, run_argv, run_line

SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15, "CONT": 18, "STOP": 19}


def parse_duration(text: str) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", text)
    if match is None:
        return None
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


async def sleep(argv: list[str], env: ShellEnv, io: Streams) -> int:
    if len(argv) < 2:
        io.err("sleep: missing operand\nTry 'sleep --help' for more information.\n")
        return 1
    total = 0.0
    for arg in argv[1:]:
        seconds = parse_duration(arg)
        if seconds is None:
            io.err(f"sleep: invalid time interval '{arg}'\nTry 'sleep --help' for more information.\n")
            return 1
        total += seconds
    await asyncio.sleep(total)
    return 0


async def timeout(argv: list[str], env: ShellEnv, io: Streams) -> int:
    args = argv[1:]
    signal_name, preserve = "TERM", False
    while args and args[0].startswith("-") and args[0] != "--":
        option = args.pop(0)
        if option in ("-s", "--signal"):
            signal_name = args.pop(0) if args else ""
        elif option.startswith("--signal="):
            signal_name = option.split("=", 1)[1]
        elif option in ("-k", "--kill-after"):
            if not args or parse_duration(args.pop(0)) is None:
                io.err("timeout: invalid time interval\n")
                return 125
        elif option.startswith("--kill-after="):
            pass
        elif option == "--preserve-status":
            preserve = True
        elif option in ("--foreground", "-v", "--verbose"):
            pass
        else:
            io.err(f"timeout: invalid option -- '{option.lstrip('-')}'\nTry 'timeout --help' for more information.\n")
            return 125
    if args and args[0] == "--":
        args.pop(0)
    signal_name = signal_name.upper().removeprefix("SIG")
    signum = int(signal_name) if signal_name.isdigit() else SIGNALS.get(signal_name)
    if signum is None:
        io.err(f"timeout: {signal_name}: invalid signal\n")
        return 125
    if not args:
        io.err("timeout: missing operand\nTry 'timeout --help' for more information.\n")
        return 125
    limit = parse_duration(args[0])
    if limit is None:
        io.err(f"timeout: invalid time interval '{args[0]}'\nTry 'timeout --help' for more information.\n")
        return 125
    if len(args) < 2:
        io.err(f"timeout: missing operand after '{args[0]}'\n")
        return 125
    try:
        return await asyncio.wait_for(run_argv(args[1:], env, io), timeout=limit if limit > 0 else None)
    except TimeoutError:
        if preserve or signum == 9:
            return 128 + signum
        return 124


async def sh(argv: list[str], env: ShellEnv, io: Streams) -> int:
    if len(argv) >= 3 and argv[1] == "-c":
        return await run_line(argv[2], env, io)
    if len(argv) == 1 and io.stdin:
        status = 0
        for line in io.stdin.splitlines():
            status = await run_line(line, env, Streams(io.write_out, io.write_err))
        return status
    io.err(f"{argv[0]}: only '-c COMMAND' is supported by pve-sim\n")
    return 2


async def exec_(argv: list[str], env: ShellEnv, io: Streams) -> int:
    """`exec CMD` (the SSH worker wraps commands in `exec timeout ...`) runs CMD in place."""
    args = argv[1:]
    if argv[0] == "nice" and args[:1] == ["-n"]:
        args = args[2:]
    return await run_argv(args, env, io) if args else 0


async def env_(argv: list[str], env: ShellEnv, io: Streams) -> int:
    args = argv[1:]
    scoped = dataclasses.replace(env, env=dict(env.env))
    while args and "=" in args[0] and not args[0].startswith("="):
        name, _, value = args.pop(0).partition("=")
        scoped.env[name] = value
    if args:
        return await run_argv(args, scoped, io)
    io.out(
        f"HOME=/root\nUSER={env.user}\nSHELL=/bin/bash\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )
    return 0


async def which(argv: list[str], env: ShellEnv, io: Streams) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")]
    if argv[0] == "command" and "-v" not in argv[1:]:
        return await run_argv(names, env, io) if names else 0
    status = 0
    for name in names:
        if name in env.commands:
            io.out(f"/usr/bin/{name}\n" if name not in ("exec", "command") else f"{name}\n")
        else:
            status = 1
    return status
