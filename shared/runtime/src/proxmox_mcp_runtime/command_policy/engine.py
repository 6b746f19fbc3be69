"""The policy decision: lex, resolve the program, match a rule of the profile, check every argument.

Standard library only (the forced-command dispatcher on the host runs this same module). Deny by default:
a command runs only when one rule of the profile accepts the program, its subcommand words and every
argument, and the command is not on the never-list (dangers.py) unless the profile opted in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .arguments import parse_args
from .builtin import BUILTIN_PROFILES
from .checkers import CHECKERS, CheckContext
from .dangers import never_reason
from .lexer import Word, tokenize
from .model import CommandRule, CoreDecision, PathResolver, PolicyError, ProfileSpec

BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
"""Absolute program paths under these map to the bare name; any other path is refused."""

_PROGRAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def resolve_program(word: Word) -> str:
    """The canonical program name of the first word, or PolicyError."""
    text = word.text
    if word.quoted:
        raise PolicyError(f"the program must be a plain unquoted word, got {text!r} written with quotes")
    if _ASSIGNMENT.match(text):
        raise PolicyError(f"environment assignment {text.split('=')[0]}=... before the program is not allowed")
    if text.startswith("-"):
        raise PolicyError(f"program name {text!r} starts with '-'")
    if "/" in text:
        directory, _, name = text.rpartition("/")
        if directory not in BIN_DIRS:
            raise PolicyError(
                f"program path {text!r} is refused: only {', '.join(d + '/NAME' for d in BIN_DIRS)} are accepted"
            )
        text = name
    if not _PROGRAM.fullmatch(text):
        raise PolicyError(f"program name {text!r} is not a plain name")
    return text


def _match(profile: ProfileSpec, program: str, args: list[str]) -> tuple[CommandRule, int] | None:
    """The rule with the longest matching subcommand and how many arguments it consumed."""
    best: tuple[CommandRule, int] | None = None
    for rule in profile.rules:
        if rule.program != program:
            continue
        skip = 0
        if rule.subcommand:
            while skip < len(args) and args[skip] in rule.global_flags:
                skip += 1
        words = len(rule.subcommand)
        if tuple(args[skip : skip + words]) != rule.subcommand:
            continue
        if best is None or words > len(best[0].subcommand):
            best = (rule, skip + words)
    return best


def _where_else(program: str, args: list[str], current: str) -> str:
    others = [name for name, spec in BUILTIN_PROFILES.items() if name != current and _match(spec, program, args)]
    return f" (it is in profile {' and '.join(others)})" if others else ""


def _no_rule(profile: ProfileSpec, program: str, args: list[str]) -> str:
    subs = sorted({" ".join(r.subcommand) for r in profile.rules if r.program == program and r.subcommand})
    elsewhere = _where_else(program, args, profile.name)
    if not subs:
        return f"program {program!r} is not allowed in profile {profile.name}{elsewhere}"
    shown = " ".join(args[:2]) if args else "(none)"
    return (
        f"{program} {shown}: not an allowed use of {program} in profile {profile.name}{elsewhere}; "
        f"allowed: {', '.join(subs)}"
    )


def _decide(
    command: str, profile: ProfileSpec, resolve: PathResolver | None
) -> tuple[CommandRule, list[str], str, bool]:
    words = tokenize(command)
    program = resolve_program(words[0])
    args = [word.text for word in words[1:]]
    argv = [program, *args]
    found = _match(profile, program, args)
    never = never_reason(argv)
    if never is not None and not (found and found[0].dangerous and profile.allow_dangerous):
        raise PolicyError(f"{never}; no profile runs it unless it explicitly allows dangerous commands")
    if found is None:
        raise PolicyError(_no_rule(profile, program, args))
    rule, consumed = found
    if rule.dangerous and not profile.allow_dangerous:
        raise PolicyError(f"rule '{rule.label}' is marked dangerous and profile {profile.name} does not allow it")
    rest = args[consumed:]
    try:
        parsed = None if rule.raw else parse_args(rule.args, rest, resolve)
        outcome = None
        if rule.check is not None:
            checker = CHECKERS.get(rule.check)
            if checker is None:
                raise PolicyError(f"rule uses unknown checker {rule.check!r}")
            outcome = checker(CheckContext(rule, rest, parsed, profile, resolve))
    except PolicyError as exc:
        raise PolicyError(f"{rule.label}: {exc}") from None
    scope = outcome.scope if outcome and outcome.scope else rule.scope
    destructive = rule.destructive or bool(outcome and outcome.destructive)
    return rule, argv, scope, destructive


def evaluate(
    command: str,
    profile: str,
    *,
    extra_profiles: Mapping[str, ProfileSpec] | None = None,
    resolve: PathResolver | None = None,
) -> CoreDecision:
    """Decide whether command may run under the named profile. Never raises for a bad command: a refusal is a
    decision with allowed=False and a reason naming the offending token or rule."""
    spec = (extra_profiles or {}).get(profile) or BUILTIN_PROFILES.get(profile)
    if spec is None:
        known: list[str] = sorted(set(BUILTIN_PROFILES) | set(extra_profiles or ()))
        return CoreDecision(
            False, [], f"unknown command profile {profile!r} (known: {', '.join(known)})", "read", False, profile
        )
    try:
        rule, argv, scope, destructive = _decide(command, spec, resolve)
    except PolicyError as exc:
        return CoreDecision(False, [], str(exc), "read", False, profile)
    reason = f"matched rule '{rule.label}' of profile {spec.name}"
    return CoreDecision(True, argv, reason, scope, destructive, profile)
