"""Text filters for pipelines (grep, head, tail, wc, sort, uniq) and `seq`, which feeds them."""

from __future__ import annotations

import re

from proxmox_mcp_pve_sim.shell import ShellEnv, Streams
from proxmox_mcp_pve_sim.vfs import read_file


def _inputs(name: str, paths: list[str], env: ShellEnv, io: Streams) -> tuple[list[str], int]:
    if not paths:
        return [io.stdin], 0
    texts: list[str] = []
    status = 0
    for path in paths:
        content = io.stdin if path == "-" else read_file(path, env)
        if content is None:
            io.err(f"{name}: {path}: No such file or directory\n")
            status = 2 if name == "grep" else 1
            continue
        texts.append(content)
    return texts, status


def _count_option(args: list[str], default: int) -> tuple[int | None, list[str]]:
    count = default
    rest: list[str] = []
    iterator = iter(args)
    for arg in iterator:
        if arg == "-n":
            value = next(iterator, "")
        elif arg.startswith("-n"):
            value = arg[2:]
        elif re.fullmatch(r"-\d+", arg):
            value = arg[1:]
        else:
            rest.append(arg)
            continue
        if not value.lstrip("+-").isdigit():
            return None, rest
        count = int(value.lstrip("+-"))
    return count, rest


SEQ_CHUNK = 4096


async def seq(argv: list[str], env: ShellEnv, io: Streams) -> int:
    """coreutils' seq for integers: seq [-w] [-s SEP] [FIRST [INCREMENT]] LAST."""
    args, separator, equal_width = argv[1:], "\n", False
    while args and args[0] in ("-w", "-s") or (args and args[0].startswith("-s") and len(args[0]) > 2):
        option = args.pop(0)
        if option == "-w":
            equal_width = True
        elif option == "-s":
            if not args:
                io.err("seq: option requires an argument -- 's'\n")
                return 1
            separator = args.pop(0)
        else:
            separator = option[2:]
    if not 1 <= len(args) <= 3 or not all(re.fullmatch(r"[+-]?\d+", a) for a in args):
        io.err(f"seq: invalid argument: {' '.join(args) or 'missing operand'}\n")
        return 1
    numbers = [int(a) for a in args]
    first, step, last = (1, 1, numbers[0]) if len(numbers) == 1 else (
        (numbers[0], 1, numbers[1]) if len(numbers) == 2 else (numbers[0], numbers[1], numbers[2]))
    if step == 0:
        io.err("seq: invalid Zero increment value: '0'\n")
        return 1
    width = max(len(str(first)), len(str(last))) if equal_width else 0
    values = range(first, last + (1 if step > 0 else -1), step)
    for start in range(0, len(values), SEQ_CHUNK):
        chunk = values[start:start + SEQ_CHUNK]
        text = separator.join(str(v).zfill(width) for v in chunk)
        io.out(text + ("\n" if start + SEQ_CHUNK >= len(values) else separator))
    return 0


async def head_tail(argv: list[str], env: ShellEnv, io: Streams) -> int:
    name = argv[0].rsplit("/", 1)[-1]
    count, paths = _count_option(argv[1:], 10)
    if count is None:
        io.err(f"{name}: invalid number of lines\n")
        return 1
    texts, status = _inputs(name, paths, env, io)
    for text in texts:
        lines = text.splitlines(keepends=True)
        io.out("".join(lines[:count] if name == "head" else lines[-count:] if count else []))
    return status


async def grep(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags: set[str] = set()
    args = argv[1:]
    while args and args[0].startswith("-") and len(args[0]) > 1:
        option = args.pop(0)
        if option == "--":
            break
        if option == "-e":
            break
        flags.update(option.lstrip("-"))
    if not args:
        io.err("Usage: grep [OPTION]... PATTERNS [FILE]...\n")
        return 2
    pattern, paths = args[0], args[1:]
    try:
        regex = re.compile(pattern if "F" not in flags else re.escape(pattern), re.I if "i" in flags else 0)
    except re.error:
        io.err("grep: Invalid regular expression\n")
        return 2
    texts, status = _inputs("grep", paths, env, io)
    matched = 0
    for text in texts:
        for line in text.splitlines():
            hit = regex.search(line) is not None
            if hit != ("v" in flags):
                matched += 1
                if "c" not in flags and "q" not in flags:
                    io.out(line + "\n")
    if "c" in flags:
        io.out(f"{matched}\n")
    return status or (0 if matched else 1)


async def wc(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags = "".join(a.lstrip("-") for a in argv[1:] if a.startswith("-")) or "lwc"
    texts, status = _inputs("wc", [a for a in argv[1:] if not a.startswith("-")], env, io)
    text = "".join(texts)
    counts = {"l": text.count("\n"), "w": len(text.split()), "c": len(text.encode()), "m": len(text)}
    io.out(" ".join(f"{counts[f]:>7}" if len(flags) > 1 else str(counts[f]) for f in "lwcm" if f in flags) + "\n")
    return status


async def sort(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags = "".join(a.lstrip("-") for a in argv[1:] if a.startswith("-"))
    texts, status = _inputs("sort", [a for a in argv[1:] if not a.startswith("-")], env, io)
    lines = "".join(texts).splitlines()

    def key(line: str) -> tuple[float, str]:
        match = re.match(r"\s*(-?\d+(\.\d+)?)", line)
        return (float(match.group(1)) if match else 0.0, line)

    ordered = sorted(lines, key=key) if "n" in flags else sorted(lines)
    if "r" in flags:
        ordered.reverse()
    if "u" in flags:
        ordered = list(dict.fromkeys(ordered))
    io.out("".join(line + "\n" for line in ordered))
    return status


async def uniq(argv: list[str], env: ShellEnv, io: Streams) -> int:
    texts, status = _inputs("uniq", [a for a in argv[1:] if not a.startswith("-")], env, io)
    previous = None
    for line in "".join(texts).splitlines():
        if line != previous:
            io.out(line + "\n")
        previous = line
    return status
