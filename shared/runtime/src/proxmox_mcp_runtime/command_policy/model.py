"""Data model of the command policy: rules, profiles and the core decision. Standard library only.

This module (like every module of the package except `__init__` and `bundle`) must import nothing outside
the standard library: the same code runs on the Proxmox host inside the forced-command dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SCOPES = ("read", "operate", "exec", "admin")
"""Scope levels, lowest first; the same strings as proxmox_mcp_contracts.envelope.Scope."""

PathResolver = Callable[[str], str]
"""Maps an absolute path to the file it really names (os.path.realpath on the host; None on the worker)."""


class PolicyError(Exception):
    """The command is refused; the message says why, naming the offending token or rule."""


@dataclass(frozen=True)
class ArgSpec:
    """What arguments a command (after its subcommand words) accepts. Anything not declared is refused.

    Value kinds (strings, also used in config files): int, int:MIN:MAX, num:MIN:MAX, vmid, path, device,
    word, name, text, choice:A|B|C, regex:PATTERN (full match), plus kinds checked by a rule's checker.
    """

    flags: frozenset[str] = frozenset()
    """Options without a value, exact spelling ("--all", "-h")."""
    short_flags: str = ""
    """Single letters that may be combined after one dash ("-la" = -l -a)."""
    options: Mapping[str, str] = field(default_factory=dict[str, str])
    """Options taking a value -> value kind. "-n" accepts "-n 5" and "-n5"; "--lines" accepts "--lines 5"
    and "--lines=5"."""
    attached_only: frozenset[str] = frozenset()
    """Long options of `options` whose value may only be attached with "=" (optional-argument options)."""
    positionals: tuple[str, ...] = ()
    """Kinds of the positional arguments in order; the last kind repeats up to max_positionals."""
    min_positionals: int = 0
    max_positionals: int = 0
    no_options: bool = False
    """Every argument is positional (echo): dashes have no special meaning."""


@dataclass(frozen=True)
class CommandRule:
    """One allowed command shape: program, leading subcommand words, arguments, and what it means."""

    program: str
    subcommand: tuple[str, ...] = ()
    args: ArgSpec = ArgSpec()
    scope: str = "read"
    destructive: bool = False
    dangerous: bool = False
    """Only honoured in a profile with allow_dangerous (and required for programs on the never-list)."""
    check: str | None = None
    """Name of an extra built-in checker (see checkers.CHECKERS) run after the argument parse."""
    raw: bool = False
    """Skip the generic argument parse: the checker sees the raw arguments (find, pvesh)."""
    global_flags: frozenset[str] = frozenset()
    """Flags allowed between the program and its subcommand words ("ip -br addr")."""

    @property
    def label(self) -> str:
        return " ".join((self.program, *self.subcommand))


@dataclass(frozen=True)
class ProfileSpec:
    """A named set of command rules. Resolved: `extends` is already merged into `rules`."""

    name: str
    rules: tuple[CommandRule, ...]
    allow_dangerous: bool = False
    max_sleep: float = 3600.0
    """Upper bound for `sleep N` (the longest execute_command timeout)."""
    description: str = ""


@dataclass(frozen=True)
class CoreDecision:
    """The stdlib form of a policy decision; the package wrapper turns `scope` into the contracts' Scope."""

    allowed: bool
    argv: list[str]
    reason: str
    scope: str
    destructive: bool
    profile: str


@dataclass(frozen=True)
class CheckOutcome:
    """What a checker may add to a matched rule: a different scope or destructiveness for these arguments."""

    scope: str | None = None
    destructive: bool | None = None


def higher_scope(a: str, b: str) -> str:
    return a if SCOPES.index(a) >= SCOPES.index(b) else b
