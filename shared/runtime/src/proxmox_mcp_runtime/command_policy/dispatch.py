"""pmcp-dispatch: the sshd forced command that runs only what the command policy allows. Standard library only.

Installed on the Proxmox host (see deploy/host/README.md) as

    restrict,from="GATEWAY_IP",command="/usr/local/bin/pmcp-dispatch --profile readonly" ssh-ed25519 AAAA...

sshd puts the client's requested command in SSH_ORIGINAL_COMMAND. The dispatcher evaluates it with the same
policy code as the SSH worker (plus a symlink-resolving path check only the host can do), then executes the
approved argv directly (no shell). A refusal prints the reason on stderr and exits 126. The SSH worker's
remote-timeout wrapper (`exec timeout --signal=TERM --kill-after=K T ARGV`, see proxmox_mcp_runtime.ssh.command)
is recognised in exactly that form and re-applied to the approved argv; so is a `sudo -n -- ARGV` prefix
(see with_sudo), which is stripped: programs listed in --sudo run as `sudo -n -- /abs/path ARGS`, others not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from .config import ProfileConfigError, load_profiles_file
from .engine import evaluate
from .model import PolicyError, ProfileSpec

REFUSED = 126
NOT_FOUND = 127
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
"""The only directories programs are looked up in (never the user's PATH, never /usr/local/bin)."""
DEFAULT_MAX_TIMEOUT = 3601.0
_KEPT_ENV = ("HOME", "USER", "LOGNAME", "LANG", "TZ", "SSH_CLIENT", "SSH_CONNECTION")
_NUMBER = r"[0-9]{1,6}(?:\.[0-9]{1,3})?"
_WRAPPER = re.compile(rf"exec timeout --signal=(TERM|KILL|INT|HUP) --kill-after=({_NUMBER}) ({_NUMBER}) (.*)", re.S)

_SUDO = re.compile(r"sudo -n -- (.*)", re.S)
SUDO_PREFIX = ("sudo", "-n", "--")

Exec = Callable[[str, list[str], dict[str, str]], Any]


def with_sudo(argv: list[str], programs: Collection[str]) -> list[str]:
    """argv prefixed with `sudo -n --` when its program needs root on the host (a limited SSH user).

    The SSH worker may send this form without a dispatcher (sudoers then decides); the dispatcher accepts
    it, evaluates the command behind it, and applies its own --sudo list instead."""
    return [*SUDO_PREFIX, *argv] if argv and argv[0] in programs else list(argv)


def split_timeout_wrapper(command: str, max_timeout: float) -> tuple[list[str], str]:
    """(timeout argv prefix, inner command) for the SSH worker's wrapper form; ([], command) otherwise."""
    match = _WRAPPER.fullmatch(command)
    if match is None:
        return [], command
    signal, kill_after, duration, inner = match.groups()
    if float(duration) > max_timeout:
        raise PolicyError(f"timeout {duration}s is longer than the maximum {max_timeout:g}s")
    if float(kill_after) > 60:
        raise PolicyError(f"--kill-after={kill_after} is longer than 60s")
    return ["timeout", f"--signal={signal}", f"--kill-after={kill_after}", duration], inner


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = {key: environ[key] for key in _KEPT_ENV if key in environ}
    env.update({key: value for key, value in environ.items() if key.startswith("LC_") and value.isprintable()})
    env["PATH"] = SAFE_PATH
    return env


def _append_log(path: str, record: dict[str, Any]) -> None:
    line = (json.dumps(record, ensure_ascii=True, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmcp-dispatch", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--profile", default="readonly", help="command profile (default: readonly)")
    parser.add_argument("--profiles-file", help="extra profiles: .json is JSON, any other name TOML")
    parser.add_argument("--log", help="append one JSON line per request to this file (refuse if it cannot)")
    parser.add_argument("--sudo", default="", help="comma-separated programs to run as `sudo -n -- /abs/path ...`")
    parser.add_argument(
        "--max-timeout",
        type=float,
        default=DEFAULT_MAX_TIMEOUT,
        help="longest accepted remote timeout wrapper, seconds",
    )
    parser.add_argument(
        "--no-resolve", action="store_true", help="do not check the files path arguments resolve to (symlinks)"
    )
    return parser


def _final_argv(argv: list[str], sudo: set[str], wrapper: list[str]) -> list[str]:
    if argv[0] in sudo:
        absolute = shutil.which(argv[0], path=SAFE_PATH)
        if absolute is None:
            raise FileNotFoundError(argv[0])
        argv = ["sudo", "-n", "--", absolute, *argv[1:]]
    return [*wrapper, *argv]


def main(
    args: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    execute: Exec = os.execvpe,
) -> int:
    """Evaluate SSH_ORIGINAL_COMMAND and exec it (does not return) or refuse (returns 126)."""
    options = _parser().parse_args(args)
    env = os.environ if environ is None else environ
    command = env.get("SSH_ORIGINAL_COMMAND")
    record: dict[str, Any] = {
        "time": round(time.time(), 3),
        "profile": options.profile,
        "command": command,
        "client": env.get("SSH_CLIENT", "").split(" ")[0] or None,
    }

    def refuse(message: str, code: int = REFUSED) -> int:
        record.update(allowed=False, reason=message)
        if options.log:
            with contextlib.suppress(OSError):  # a refusal is safe even when it cannot be logged
                _append_log(options.log, record)
        print(f"pmcp-dispatch: refused by policy: {message}", file=sys.stderr)
        return code

    if command is None:
        return refuse("no command given (interactive sessions are not allowed)")
    extra: dict[str, ProfileSpec] = {}
    if options.profiles_file:
        try:
            extra = load_profiles_file(options.profiles_file)
        except ProfileConfigError as exc:
            return refuse(f"cannot load profiles file: {exc}")
    try:
        wrapper, inner = split_timeout_wrapper(command, options.max_timeout)
    except PolicyError as exc:
        return refuse(str(exc))
    sudo_requested = _SUDO.fullmatch(inner)
    if sudo_requested is not None:
        inner = sudo_requested.group(1)  # the host's --sudo list decides who gets root, not the client
    resolve = None if options.no_resolve else os.path.realpath
    decision = evaluate(inner, options.profile, extra_profiles=extra, resolve=resolve)
    if not decision.allowed:
        return refuse(decision.reason)
    sudo = {name for name in options.sudo.split(",") if name}
    try:
        final = _final_argv(decision.argv, sudo, wrapper)
    except FileNotFoundError as exc:
        return refuse(f"program {exc} not found in {SAFE_PATH}", NOT_FOUND)
    record.update(
        allowed=True,
        reason=decision.reason,
        argv=decision.argv,
        exec=final,
        scope=decision.scope,
        destructive=decision.destructive,
    )
    if options.log:
        try:
            _append_log(options.log, record)
        except OSError as exc:
            print(f"pmcp-dispatch: refused: cannot write the log {options.log}: {exc.strerror}", file=sys.stderr)
            return REFUSED
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        execute(final[0], final, _environment(env))
    except OSError as exc:
        print(f"pmcp-dispatch: cannot run {final[0]}: {exc.strerror}", file=sys.stderr)
        return NOT_FOUND
    return 0  # only reached with a test double for execute
