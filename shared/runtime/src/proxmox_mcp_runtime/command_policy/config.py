"""Profiles from configuration (a Mapping the caller loaded from TOML or JSON). Standard library only.

[profiles.ops]                      # or {"profiles": {"ops": {...}}} in JSON; the top "profiles" key is optional
extends = ["operator"]              # built-in or other configured profiles, merged in order (a profile
                                    # named like a built-in replaces it and may extend the original)
remove = ["qm reset"]               # drop inherited rules: "PROGRAM" (all its rules) or "PROGRAM SUB WORDS"
allow_dangerous = false             # honour rules marked dangerous = true (never-list programs need both)
max_sleep = 600                     # upper bound of `sleep N`
description = "..."

[[profiles.ops.rules]]              # later rules replace inherited ones with the same program + subcommand
program = "qm"
subcommand = "migrate"              # words, as a string or a list
positionals = ["vmid", "name"]      # value kinds; the last one repeats up to max_positionals
min_positionals = 2
max_positionals = 2                 # default: len(positionals)
flags = ["--online"]
short_flags = ""
options = { "--targetstorage" = "name" }
attached_only = []
no_options = false
global_flags = []
scope = "operate"                   # read | operate | exec | admin
destructive = false
dangerous = false
check = ""                          # a built-in checker: find grep journalctl top seq sleep samples smartctl
                                    # lvm_fields pvesh pvesh_admin guest_set
raw = false                         # the checker parses the arguments itself
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from .builtin import BUILTIN_PROFILES
from .checkers import CHECKERS
from .model import SCOPES, ArgSpec, CommandRule, ProfileSpec
from .rulekit import merge_rules

_PROFILE_KEYS = {"extends", "remove", "allow_dangerous", "max_sleep", "description", "rules"}
_RULE_KEYS = {
    "program",
    "subcommand",
    "positionals",
    "min_positionals",
    "max_positionals",
    "flags",
    "short_flags",
    "options",
    "attached_only",
    "no_options",
    "global_flags",
    "scope",
    "destructive",
    "dangerous",
    "check",
    "raw",
}
_SIMPLE_KINDS = {"int", "num", "vmid", "path", "device", "word", "name", "text"}
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_PROGRAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
_OPTION = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9_.-]*")


class ProfileConfigError(ValueError):
    """The profile configuration is invalid; the message names the key."""


def _kind(kind: Any, where: str) -> str:
    if not isinstance(kind, str):
        raise ProfileConfigError(f"{where}: value kind must be a string")
    name, sep, spec = kind.partition(":")
    if name in ("int", "num") and sep:
        try:
            low, high = (float(x) for x in spec.split(":"))
        except ValueError:
            raise ProfileConfigError(f"{where}: {kind!r} must look like {name}:MIN:MAX") from None
        if low > high:
            raise ProfileConfigError(f"{where}: {kind!r} has MIN > MAX")
    elif name == "choice":
        if not spec:
            raise ProfileConfigError(f"{where}: choice needs values: choice:a|b")
    elif name == "regex":
        try:
            re.compile(spec)
        except re.error as exc:
            raise ProfileConfigError(f"{where}: bad regex {spec!r}: {exc}") from None
    elif name not in _SIMPLE_KINDS or sep:
        raise ProfileConfigError(f"{where}: unknown value kind {kind!r}")
    return kind


def _table(value: object) -> Mapping[Any, Any] | None:
    """`value` as a TOML/JSON table (keys not yet checked), or None when it is not one."""
    return cast(Mapping[Any, Any], value) if isinstance(value, Mapping) else None


def _array(value: object) -> list[Any] | None:
    """`value` as a TOML/JSON array (items not yet checked), or None when it is not one."""
    return cast(list[Any], value) if isinstance(value, list) else None


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Sequence):
        items = cast(Sequence[object], value)
        strings = [item for item in items if isinstance(item, str)]
        if len(strings) == len(items):
            return strings
    raise ProfileConfigError(f"{where}: expected a list of strings")


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProfileConfigError(f"{where}: expected true or false")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 128:
        raise ProfileConfigError(f"{where}: expected an integer between 0 and 128")
    return value


def _options(names: list[str], where: str) -> frozenset[str]:
    for name in names:
        if not _OPTION.fullmatch(name):
            raise ProfileConfigError(f"{where}: {name!r} is not an option name")
    return frozenset(names)


def parse_rule(raw: Any, where: str) -> CommandRule:
    raw = _table(raw)
    if raw is None:
        raise ProfileConfigError(f"{where}: a rule must be a table")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ProfileConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    program = raw.get("program")
    if not isinstance(program, str) or not _PROGRAM.fullmatch(program):
        raise ProfileConfigError(f"{where}.program: must be a bare program name (no path)")
    positionals = tuple(_kind(k, f"{where}.positionals") for k in _strings(raw.get("positionals", []), where))
    options_raw = _table(raw.get("options", {}))
    if options_raw is None:
        raise ProfileConfigError(f"{where}.options: expected a table of option = value kind")
    options = {str(name): _kind(kind, f"{where}.options[{name!r}]") for name, kind in options_raw.items()}
    _options(list(options), f"{where}.options")
    short = raw.get("short_flags", "")
    if not isinstance(short, str) or not all(c.isalnum() for c in short):
        raise ProfileConfigError(f'{where}.short_flags: expected letters, e.g. "la"')
    scope = raw.get("scope", "read")
    if scope not in SCOPES:
        raise ProfileConfigError(f"{where}.scope: must be one of {', '.join(SCOPES)}")
    check = raw.get("check") or None
    if check is not None and check not in CHECKERS:
        raise ProfileConfigError(f"{where}.check: unknown checker {check!r} (known: {', '.join(sorted(CHECKERS))})")
    spec = ArgSpec(
        flags=_options(_strings(raw.get("flags", []), f"{where}.flags"), f"{where}.flags"),
        short_flags=short,
        options=options,
        attached_only=_options(_strings(raw.get("attached_only", []), f"{where}.attached_only"), where),
        positionals=positionals,
        min_positionals=_int(raw.get("min_positionals", 0), f"{where}.min_positionals"),
        max_positionals=_int(raw.get("max_positionals", len(positionals)), f"{where}.max_positionals"),
        no_options=_bool(raw.get("no_options", False), f"{where}.no_options"),
    )
    return CommandRule(
        program=program,
        subcommand=tuple(_strings(raw.get("subcommand", []), f"{where}.subcommand")),
        args=spec,
        scope=scope,
        destructive=_bool(raw.get("destructive", False), f"{where}.destructive"),
        dangerous=_bool(raw.get("dangerous", False), f"{where}.dangerous"),
        check=check,
        raw=_bool(raw.get("raw", False), f"{where}.raw"),
        global_flags=_options(_strings(raw.get("global_flags", []), f"{where}.global_flags"), where),
    )


def _resolve(name: str, raw_profiles: Mapping[str, Any], done: dict[str, ProfileSpec], stack: list[str]) -> ProfileSpec:
    if name in done:
        return done[name]
    if name not in raw_profiles:
        if name in BUILTIN_PROFILES:
            return BUILTIN_PROFILES[name]
        raise ProfileConfigError(f"profiles.{stack[-1]}.extends: unknown profile {name!r}")
    if name in stack:
        raise ProfileConfigError(f"profiles.{name}: extends cycle {' -> '.join([*stack, name])}")
    where = f"profiles.{name}"
    raw = _table(raw_profiles[name])
    if raw is None:
        raise ProfileConfigError(f"{where}: a profile must be a table")
    unknown = set(raw) - _PROFILE_KEYS
    if unknown:
        raise ProfileConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    parents = [
        BUILTIN_PROFILES[p] if p == name and p in BUILTIN_PROFILES else _resolve(p, raw_profiles, done, [*stack, name])
        for p in _strings(raw.get("extends", []), where)
    ]
    inherited = list(merge_rules(*(p.rules for p in parents)))
    removes = _array(raw.get("remove", []))
    if removes is None or not all(isinstance(r, str) for r in removes):
        raise ProfileConfigError(f'{where}.remove: expected a list like ["qm reset", "pct"]')
    for entry in removes:
        words = tuple(entry.split())
        if not words:
            raise ProfileConfigError(f"{where}.remove: empty entry")
        inherited = [
            r for r in inherited if not (r.program == words[0] and (len(words) == 1 or r.subcommand == words[1:]))
        ]
    rules_raw = _array(raw.get("rules", []))
    if rules_raw is None:
        raise ProfileConfigError(f"{where}.rules: expected a list of rule tables")
    own = [parse_rule(item, f"{where}.rules[{index}]") for index, item in enumerate(rules_raw)]
    max_sleep = raw.get("max_sleep", 3600)
    if not isinstance(max_sleep, int | float) or isinstance(max_sleep, bool) or not 0 <= max_sleep <= 86400:
        raise ProfileConfigError(f"{where}.max_sleep: expected seconds between 0 and 86400")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ProfileConfigError(f"{where}.description: expected a string")
    spec = ProfileSpec(
        name=name,
        rules=merge_rules(inherited, own),
        allow_dangerous=_bool(raw.get("allow_dangerous", False), f"{where}.allow_dangerous"),
        max_sleep=float(max_sleep),
        description=description,
    )
    done[name] = spec
    return spec


def load_profiles(config: Mapping[str, Any]) -> dict[str, ProfileSpec]:
    """Parse profile definitions (the `[profiles]` table or its content). Raises ProfileConfigError."""
    top = _table(config)
    raw_profiles = _table(top.get("profiles", top)) if top is not None else None
    if raw_profiles is None:
        raise ProfileConfigError("profiles: expected a table of profile name = profile")
    done: dict[str, ProfileSpec] = {}
    for name in raw_profiles:
        if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name):
            raise ProfileConfigError(f"profiles: bad profile name {name!r}")
        _resolve(name, raw_profiles, done, [])
    return done


def load_profiles_file(path: str | Path) -> dict[str, ProfileSpec]:
    """Profiles from a file: JSON when its name ends in .json, TOML otherwise. The gateway, both workers and the
    host's dispatcher read the same file with this function. Raises ProfileConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileConfigError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileConfigError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ProfileConfigError(f"{path} is not valid {kind}: {exc}") from None
    try:
        return load_profiles(data)
    except ProfileConfigError as exc:
        raise ProfileConfigError(f"{path}: {exc}") from None
