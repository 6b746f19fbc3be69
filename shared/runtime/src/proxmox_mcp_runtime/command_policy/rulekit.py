"""Helpers to write rules compactly, and the merge used by profiles. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .model import ArgSpec, CommandRule

VMID = "vmid"
PATHS = ("path",)


def rule(
    program: str,
    subcommand: str = "",
    *,
    flags: Iterable[str] = (),
    short: str = "",
    options: Mapping[str, str] | None = None,
    attached: Iterable[str] = (),
    positionals: tuple[str, ...] = (),
    min_pos: int = 0,
    max_pos: int | None = None,
    no_options: bool = False,
    scope: str = "read",
    destructive: bool = False,
    check: str | None = None,
    raw: bool = False,
    global_flags: Iterable[str] = (),
) -> CommandRule:
    spec = ArgSpec(
        flags=frozenset(flags),
        short_flags=short,
        options=dict(options or {}),
        attached_only=frozenset(attached),
        positionals=positionals,
        min_positionals=min_pos,
        max_positionals=len(positionals) if max_pos is None else max_pos,
        no_options=no_options,
    )
    return CommandRule(
        program=program,
        subcommand=tuple(subcommand.split()),
        args=spec,
        scope=scope,
        destructive=destructive,
        check=check,
        raw=raw,
        global_flags=frozenset(global_flags),
    )


def guest(
    program: str,
    sub: str,
    *,
    flags: Iterable[str] = (),
    options: Mapping[str, str] | None = None,
    scope: str = "read",
    destructive: bool = False,
) -> CommandRule:
    """`qm|pct SUB VMID [options]`."""
    return rule(
        program, sub, flags=flags, options=options, positionals=(VMID,), min_pos=1, scope=scope, destructive=destructive
    )


def merge_rules(*groups: Iterable[CommandRule]) -> tuple[CommandRule, ...]:
    """Later groups replace earlier rules with the same program and subcommand (admin's pvesh get)."""
    merged: dict[tuple[str, tuple[str, ...]], CommandRule] = {}
    for group in groups:
        for item in group:
            merged.pop((item.program, item.subcommand), None)
            merged[(item.program, item.subcommand)] = item
    return tuple(merged.values())
