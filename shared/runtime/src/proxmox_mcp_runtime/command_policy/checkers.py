"""Program-specific checks that a flat option table cannot express. Standard library only.

A checker gets the arguments after the subcommand words (and the generic parse, unless the rule is raw)
and raises PolicyError to refuse; it may return a CheckOutcome that raises the scope or marks the command
destructive for these particular arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .arguments import ParsedArgs, check_value
from .model import CheckOutcome, CommandRule, PathResolver, PolicyError, ProfileSpec
from .paths import check_path, matches


@dataclass(frozen=True)
class CheckContext:
    rule: CommandRule
    args: list[str]
    parsed: ParsedArgs | None
    profile: ProfileSpec
    resolve: PathResolver | None


Checker = Callable[[CheckContext], CheckOutcome | None]

FIND_MAX_DEPTH = 10
_FIND_NO_VALUE = frozenset(
    [
        "-print",
        "-print0",
        "-ls",
        "-empty",
        "-xdev",
        "-mount",
        "-depth",
        "-true",
        "-false",
        "-readable",
        "-writable",
        "-executable",
        "-nouser",
        "-nogroup",
        "-o",
        "-or",
        "-a",
        "-and",
        "-not",
        "!",
        "(",
        ")",
        ",",
        "-daystart",
        "-noleaf",
        "-ignore_readdir_race",
    ]
)
_FIND_WITH_VALUE = {
    **dict.fromkeys(
        ["-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-lname", "-ilname", "-regex", "-iregex"],
        "text",
    ),
    **dict.fromkeys(["-type", "-xtype"], r"regex:[bcdpflsD](,[bcdpflsD])*"),
    **dict.fromkeys(["-maxdepth", "-mindepth"], f"int:0:{FIND_MAX_DEPTH}"),
    **dict.fromkeys(
        ["-mtime", "-atime", "-ctime", "-mmin", "-amin", "-cmin", "-links", "-inum", "-uid", "-gid"],
        r"regex:[+-]?[0-9]{1,10}",
    ),
    "-size": r"regex:[+-]?[0-9]{1,12}[bcwkMG]?",
    "-user": "name",
    "-group": "name",
    "-perm": r"regex:[-/]?[0-7ugoarwxXst,=+]{1,32}",
    **dict.fromkeys(["-newer", "-anewer", "-cnewer", "-samefile"], "path"),
    "-printf": "text",
    "-regextype": "name",
}
_FIND_FORBIDDEN = {
    **dict.fromkeys(["-exec", "-execdir", "-ok", "-okdir"], "runs other programs"),
    "-delete": "deletes files",
    **dict.fromkeys(["-fprint", "-fprint0", "-fprintf", "-fls"], "writes files"),
    "-files0-from": "reads start points from a file",
    "-L": "follows symbolic links out of the named tree",
    "-follow": "follows symbolic links out of the named tree",
}


def check_find(ctx: CheckContext) -> None:
    """find [-P|-H] PATH... EXPRESSION: start paths pass the path rules, every primary is known and harmless,
    and -maxdepth bounds the walk (required: an unbounded walk of / can run for minutes)."""
    args = ctx.args
    index = 0
    while index < len(args) and args[index] in ("-P", "-H"):
        index += 1
    starts = 0
    while index < len(args) and not args[index].startswith("-") and args[index] not in ("!", "(", ")", ","):
        check_path(args[index], ctx.resolve)
        starts += 1
        index += 1
    if starts == 0:
        raise PolicyError("needs at least one absolute start path before the expression")
    depth: int | None = None
    while index < len(args):
        token = args[index]
        if token in _FIND_FORBIDDEN:
            raise PolicyError(f"{token} is not allowed: it {_FIND_FORBIDDEN[token]}")
        if token in _FIND_NO_VALUE:
            index += 1
            continue
        if token not in _FIND_WITH_VALUE:
            raise PolicyError(f"expression {token!r} is not allowed")
        if index + 1 >= len(args):
            raise PolicyError(f"{token} needs a value")
        check_value(_FIND_WITH_VALUE[token], args[index + 1], f"value of {token}", ParsedArgs(), ctx.resolve)
        if token == "-maxdepth":
            depth = int(args[index + 1])
        index += 2
    if depth is None:
        raise PolicyError(f"needs -maxdepth N (N <= {FIND_MAX_DEPTH}) to bound the walk")


def check_grep(ctx: CheckContext) -> None:
    """The first operand is the pattern unless -e/-f gave one; every other operand is a file and passes the
    path rules (a pattern-less `grep -e x /etc/shadow` must not slip a file through as "the pattern")."""
    parsed = ctx.parsed
    assert parsed is not None
    has_pattern_option = parsed.has("-e", "--regexp", "-f", "--file")
    files = parsed.positionals if has_pattern_option else parsed.positionals[1:]
    if not has_pattern_option and not parsed.positionals:
        raise PolicyError("needs a pattern")
    if not files:
        raise PolicyError("needs at least one file operand (there is no input to read otherwise)")
    for name in files:
        parsed.paths.append(check_path(name, ctx.resolve))


def check_journalctl(ctx: CheckContext) -> None:
    parsed = ctx.parsed
    assert parsed is not None
    if not parsed.has("-n", "--lines", "-S", "--since"):
        raise PolicyError("needs -n N (at most 10000) or --since TIME to bound its output")


def check_top(ctx: CheckContext) -> None:
    parsed = ctx.parsed
    assert parsed is not None
    if not (parsed.has("-b") and parsed.has("-n")):
        raise PolicyError("must run in batch mode with a count: top -b -n N (N <= 5)")


def check_seq(ctx: CheckContext) -> None:
    parsed = ctx.parsed
    assert parsed is not None
    if len(parsed.positionals) == 3 and int(parsed.positionals[1]) < 1:
        raise PolicyError("the increment must be at least 1")


def check_sleep(ctx: CheckContext) -> None:
    parsed = ctx.parsed
    assert parsed is not None
    seconds = float(parsed.positionals[0])
    if seconds > ctx.profile.max_sleep:
        raise PolicyError(f"{parsed.positionals[0]}s is longer than the maximum {ctx.profile.max_sleep:g}s")


MAX_SAMPLE_INTERVAL = 60
MAX_SAMPLES = 60
"""Together at most an hour of sampling, the longest execute_command timeout."""


def check_samples(ctx: CheckContext) -> None:
    """`[NAME...] [INTERVAL [COUNT]]` of the sampling tools (vmstat, iostat, mpstat, zpool status|list|iostat):
    the numbers come last, and an interval without a count samples until the process is killed."""
    parsed = ctx.parsed
    assert parsed is not None
    numbers: list[int] = []
    for operand in parsed.positionals:
        if operand.isdigit():
            numbers.append(int(operand))
        elif numbers:
            raise PolicyError(f"operand {operand!r} after the interval is not allowed")
    if len(numbers) > 2:
        raise PolicyError("takes at most an interval and a count")
    if len(numbers) == 1:
        raise PolicyError("an interval needs a count (without one it samples until killed): INTERVAL COUNT")
    if numbers:
        interval, count = numbers
        if not 1 <= interval <= MAX_SAMPLE_INTERVAL:
            raise PolicyError(f"the interval must be between 1 and {MAX_SAMPLE_INTERVAL} seconds, got {interval}")
        if not 1 <= count <= MAX_SAMPLES:
            raise PolicyError(f"the count must be between 1 and {MAX_SAMPLES}, got {count}")


def check_smartctl(ctx: CheckContext) -> None:
    """One device to read, or none with --scan/--scan-open (which list the devices instead)."""
    parsed = ctx.parsed
    assert parsed is not None
    scanning = parsed.has("--scan", "--scan-open")
    if scanning and parsed.positionals:
        raise PolicyError("--scan lists the devices itself: give no device with it")
    if not scanning and len(parsed.positionals) != 1:
        raise PolicyError("needs exactly one device (/dev/NAME), or --scan")


_LVM_SECRET_FIELDS = frozenset(("tags", "all"))


def check_lvm_fields(ctx: CheckContext) -> None:
    """No tag columns in lvs/vgs/pvs reports: ceph-volume keeps an encrypted OSD's lockbox key in the LV tag
    ceph.cephx_lockbox_secret. `all` and `lv_all`-style groups include the tags, so they are refused too."""
    parsed = ctx.parsed
    assert parsed is not None
    for value in parsed.values("-o", "--options"):
        for field in value.split(","):
            name = field.lstrip("+-")
            if name in _LVM_SECRET_FIELDS or name.endswith(("_tags", "_all")):
                raise PolicyError(f"report field {name!r} is refused: LVM tags can hold Ceph keys")


# --- Proxmox CLI: pvesh and `qm|pct set` -------------------------------------------------------------------

_API_PATH = re.compile(r"[A-Za-z0-9_.:@=%+/-]{1,512}")
_PARAM = re.compile(r"--?([a-z][a-z0-9_-]{0,63})")
_PVESH_FORMAT = {"--output-format": "choice:json|json-pretty|text|yaml"}
_PVESH_BOOL_FORMAT = frozenset(("--noborder", "--noheader", "--human-readable", "--quiet"))
_BOOL_WORDS = frozenset(("0", "1", "true", "false", "yes", "no", "on", "off"))
NEVER_PARAMS = {
    "args": "passes raw arguments to QEMU on the host",
    "hookscript": "runs a script on the host",
    "skiplock": "overrides Proxmox's locks",
}
_HIGH_RISK_PATHS = (
    ("/access/ticket", "issues login tickets"),
    ("/nodes/*/execute", "runs batches of API calls as root"),
    ("/nodes/*/termproxy", "opens a host shell"),
    ("/nodes/*/vncshell", "opens a host shell"),
    ("/nodes/*/spiceshell", "opens a host shell"),
    ("/nodes/*/vncwebsocket", "opens a host console"),
    ("/nodes/*/*/*/termproxy", "opens a guest console"),
    ("/nodes/*/*/*/vncproxy", "opens a guest console"),
    ("/nodes/*/*/*/spiceproxy", "opens a guest console"),
    ("/nodes/*/*/*/vncwebsocket", "opens a guest console"),
    ("/nodes/*/*/*/mtunnel", "opens a migration tunnel"),
    ("/nodes/*/*/*/mtunnelwebsocket", "opens a migration tunnel"),
    ("/nodes/*/qemu/*/agent/exec", "runs commands inside the guest"),
    ("/nodes/*/qemu/*/agent/file-read", "reads files inside the guest"),
    ("/nodes/*/qemu/*/agent/file-write", "writes files inside the guest"),
    ("/nodes/*/qemu/*/agent/set-user-password", "changes a password inside the guest"),
    ("/nodes/*/qemu/*/monitor", "runs QEMU monitor commands (which can run host commands)"),
    ("/nodes/*/qemu/*/sendkey", "types into the guest console"),
    ("/nodes/*/storage/*/file-restore/**", "extracts files from backups"),
    ("/nodes/*/storage/*/download-url", "makes the host download a URL"),
    ("/nodes/*/storage/*/upload", "writes files to storage"),
)
_DANGEROUS_WRITE_PATHS = (
    ("/nodes/*/disks/**", "partitions, wipes or formats disks"),
    ("/nodes/*/ceph/**", "changes Ceph disks and daemons"),
)


def _api_path(raw: str) -> str:
    if not _API_PATH.fullmatch(raw):
        raise PolicyError(f"API path {raw!r} has characters outside [A-Za-z0-9_.:@=%+/-]")
    parts = [part for part in raw.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise PolicyError(f"API path {raw!r} contains '.' or '..'")
    return "/" + "/".join(parts)


def _cli_params(args: list[str], allowed_format: bool) -> None:
    """`--name value` pairs as the Proxmox CLI (Perl Getopt::Long) reads them. Any word starting with a dash
    and a letter counts as an option here (Getopt::Long accepts `-name` too, and a boolean takes no value),
    so no value can hide an option from this check; `--name=value` is refused for the same reason, and a
    name that abbreviates a never-parameter ("--hook") is refused like the full name."""
    index = 0
    while index < len(args):
        token = args[index]
        if allowed_format and token in _PVESH_FORMAT:
            if index + 1 >= len(args):
                raise PolicyError(f"option {token} needs a value")
            check_value(_PVESH_FORMAT[token], args[index + 1], f"value of {token}", ParsedArgs(), None)
            index += 2
            continue
        if allowed_format and token in _PVESH_BOOL_FORMAT:
            index += 2 if index + 1 < len(args) and args[index + 1] in _BOOL_WORDS else 1
            continue
        match = _PARAM.fullmatch(token)
        if match is None:
            raise PolicyError(f"argument {token!r} is not allowed here (expected --parameter value)")
        name = match.group(1)
        stem = name.rstrip("0123456789")
        for never, what in NEVER_PARAMS.items():
            if stem == never or never.startswith(name):
                raise PolicyError(f"parameter {token} is not allowed: it {what}")
        has_value = index + 1 < len(args) and not _PARAM.fullmatch(args[index + 1])
        index += 2 if has_value else 1


def _pvesh(ctx: CheckContext, admin: bool) -> CheckOutcome:
    method = ctx.rule.subcommand[-1]
    if not ctx.args or ctx.args[0].startswith("-"):
        raise PolicyError("needs an API path first")
    path = _api_path(ctx.args[0])
    if not ctx.profile.allow_dangerous:
        for pattern, what in _HIGH_RISK_PATHS:
            if matches(pattern, path):
                raise PolicyError(f"API path {path} is refused: it {what} (rule {pattern})")
        if method not in ("get", "ls"):
            for pattern, what in _DANGEROUS_WRITE_PATHS:
                if matches(pattern, path):
                    raise PolicyError(f"writing to API path {path} is refused: it {what} (rule {pattern})")
    scope = ctx.rule.scope
    if matches("/access/**", path):
        if not admin:
            raise PolicyError(f"API path {path} is under /access (users, tokens, ACLs): admin profile only")
        scope = "admin"
    _cli_params(ctx.args[1:], allowed_format=True)
    return CheckOutcome(scope=scope)


def check_pvesh(ctx: CheckContext) -> CheckOutcome:
    return _pvesh(ctx, admin=False)


def check_pvesh_admin(ctx: CheckContext) -> CheckOutcome:
    return _pvesh(ctx, admin=True)


def check_guest_set(ctx: CheckContext) -> None:
    """`qm set VMID --key value ...` / `pct set`: a guest id then Proxmox parameters, minus the never-list."""
    if not ctx.args:
        raise PolicyError("needs a VMID")
    check_value("vmid", ctx.args[0], "VMID", ParsedArgs(), None)
    if len(ctx.args) < 2:
        raise PolicyError("needs at least one --parameter")
    _cli_params(ctx.args[1:], allowed_format=False)


CHECKERS: dict[str, Checker] = {
    "find": check_find,
    "grep": check_grep,
    "journalctl": check_journalctl,
    "top": check_top,
    "seq": check_seq,
    "sleep": check_sleep,
    "samples": check_samples,
    "smartctl": check_smartctl,
    "lvm_fields": check_lvm_fields,
    "pvesh": check_pvesh,
    "pvesh_admin": check_pvesh_admin,
    "guest_set": check_guest_set,
}
