"""Checking the audit chain: walk the records in order and name every record that was removed, edited, reordered
or inserted, and compare the chain's ends with its anchor (so records cut off the end show too).

`ChainWalk` takes lines in the order they are stored, each with its place ("audit.jsonl.2 line 17", "stream
seq 1234"); `verify_files` walks a log's files oldest first (`audit.jsonl.N .. audit.jsonl`) against its anchor
file. The stream's side (one walk per gateway's chain) is in audit_verify_stream.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from proxmox_mcp_contracts.json_values import is_object

from proxmox_mcp_gateway.audit_chain import (
    CHAIN_START,
    GENESIS,
    Anchor,
    AnchorError,
    AuditKey,
    Plain,
    Sealed,
    Unreadable,
    parse_anchor,
    parse_line,
)
from proxmox_mcp_gateway.audit_read import file_generations

Medium = Literal["file", "stream"]


@dataclass(frozen=True)
class Problem:
    order: int
    """Position in the walk: the first problem is the first bad record."""
    where: str
    kind: str
    """removed, edited, reordered, inserted, duplicate, forked, unreadable, wrong key, truncated, anchor"""
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.detail}"


@dataclass
class ChainSummary:
    chain: str
    first: int
    last: int
    records: int = 0


@dataclass
class _Gap:
    order: int
    where: str
    seqs: set[int]
    before: int
    """The seq of the record the gap was found at."""


@dataclass
class ChainWalk:
    keys: dict[str, AuditKey]
    medium: Medium = "file"
    problems: list[Problem] = field(default_factory=list[Problem])
    notes: list[str] = field(default_factory=list[str])
    chains: dict[str, ChainSummary] = field(default_factory=dict[str, ChainSummary])
    records: int = 0
    legacy: int = 0
    duplicates: int = 0
    _chain: str | None = None
    _next: int = 0
    _mac: str = GENESIS
    _order: int = 0
    _seen: dict[int, tuple[str, str]] = field(default_factory=dict[int, tuple[str, str]])
    """seq -> (mac, where) of the current chain."""
    _gaps: list[_Gap] = field(default_factory=list[_Gap])
    _anchored: dict[tuple[str, int], str] = field(default_factory=dict[tuple[str, int], str])
    _watch: set[tuple[str, int]] = field(default_factory=set[tuple[str, int]])
    _other_kids: dict[str, int] = field(default_factory=dict[str, int])
    _sealed: int = 0
    _last_where: str = "the log's start"

    def watch(self, chain: str, seq: int) -> None:
        """Remember the MAC of this record (an anchor's head) when the walk passes it."""
        self._watch.add((chain, seq))

    def feed(self, where: str, line: bytes, order: int | None = None) -> None:
        """order: the record's position for sorting problems (default: one after the last fed)."""
        self._order = self._order + 1 if order is None else order
        self.records += 1
        self._last_where = where
        parsed = parse_line(line)
        if isinstance(parsed, Unreadable):
            self._problem(where, "unreadable", parsed.reason)
        elif isinstance(parsed, Plain):
            if self._sealed == 0:
                self.legacy += 1
            else:
                self._problem(where, "inserted", "a record without chain fields after the chain began (not "
                              "written by the gateway, or its chain fields were cut off)")
        else:
            self._sealed += 1
            self._sealed_record(where, parsed)

    def _sealed_record(self, where: str, record: Sealed) -> None:
        key = self.keys.get(record.kid)
        if key is None:
            self._other_kids[record.kid] = self._other_kids.get(record.kid, 0) + 1
            self._problem(where, "wrong key", f"sealed with key id {record.kid}, not with the key given "
                          f"({', '.join(self.keys)})")
            return
        if not record.authentic(key):
            self._problem(where, "edited", f"seq {record.seq}: its MAC does not match its content, so it was "
                          "changed after the gateway wrote it")
        if (record.chain, record.seq) in self._watch:
            self._anchored[(record.chain, record.seq)] = record.mac
        if record.chain != self._chain:
            self._enter_chain(where, record)
            return
        summary = self.chains[record.chain]
        summary.records += 1
        if record.seq == self._next:
            if record.prev != self._mac:
                self._problem(where, "edited", f"seq {record.seq}: its prev does not name the record before it "
                              f"(seq {record.seq - 1} was replaced)")
            self._advance(where, record)
        elif record.seq > self._next:
            missing = set(range(self._next, record.seq))
            self._gaps.append(_Gap(self._order, where, missing, record.seq))
            self._advance(where, record)
        else:
            self._earlier(where, record)

    def _earlier(self, where: str, record: Sealed) -> None:
        for gap in self._gaps:
            if record.seq in gap.seqs:
                gap.seqs.discard(record.seq)
                self.problems.append(Problem(gap.order, gap.where, "reordered", f"seq {gap.before} comes before "
                                             f"seq {record.seq} ({where}): records out of order"))
                self._seen[record.seq] = (record.mac, where)
                return
        mac, first_where = self._seen.get(record.seq, ("", "?"))
        if mac == record.mac:
            self.duplicates += 1
            if self.medium == "file":
                self._problem(where, "duplicate", f"seq {record.seq} again (first at {first_where})")
        else:
            self._problem(where, "forked", f"two different records claim seq {record.seq} of chain {record.chain} "
                          f"(the other at {first_where}): two writers on one chain without a shared lock, or a "
                          "gateway whose host lost power between writing and syncing its file")

    def _enter_chain(self, where: str, record: Sealed) -> None:
        start: object = record.record.get(CHAIN_START)
        if self._chain is not None:
            if record.seq != 1 or not is_object(start):
                self._problem(where, "inserted", f"a record of chain {record.chain} (seq {record.seq}) in the middle "
                              f"of chain {self._chain}")
                return
            self._close_chain()
            previous = _previous_chain(start)
            if previous is not None and previous[0] == self._chain:
                said = previous[1]
                if said >= self._next:
                    self._problem(where, "truncated", f"chain {self._chain} ends at seq {self._next - 1} here, but "
                                  f"the chain after it says it ended at seq {said}: {_seqs(self._next, said)} cut off")
        elif record.seq != 1:
            self.notes.append(f"chain {record.chain} begins at seq {record.seq} ({where}); the records before it "
                              + ("were rotated away" if self.medium == "file" else "are not in the stream"))
        self._chain, self._seen, self._gaps = record.chain, {}, []
        self.chains[record.chain] = ChainSummary(record.chain, record.seq, record.seq, 1)
        self._advance(where, record)

    def _advance(self, where: str, record: Sealed) -> None:
        self._next, self._mac = record.seq + 1, record.mac
        self._seen[record.seq] = (record.mac, where)
        self.chains[record.chain].last = record.seq

    def _close_chain(self) -> None:
        for gap in self._gaps:
            if gap.seqs:
                low, high = min(gap.seqs), max(gap.seqs)
                which = f"seq {low} is" if low == high else f"seqs {low}..{high} ({len(gap.seqs)} records) are"
                where = "here" if self.medium == "file" else "from the stream"
                self.problems.append(Problem(gap.order, gap.where, "removed", f"{which} missing {where}, before "
                                             f"seq {gap.before} (chain {self._chain})"))
        self._gaps = []

    def _problem(self, where: str, kind: str, detail: str) -> None:
        self.problems.append(Problem(self._order, where, kind, detail))

    def finish(self, anchor: Anchor | None) -> None:
        self._close_chain()
        if self._sealed and self._other_kids and sum(self._other_kids.values()) == self._sealed:
            kids = ", ".join(sorted(self._other_kids))
            self.problems = [p for p in self.problems if p.kind != "wrong key"]
            self.problems.append(Problem(0, "every record", "wrong key", f"the records were sealed with key id "
                                         f"{kids}; the key given has key id {', '.join(self.keys)}"))
        if anchor is not None:
            self._check_anchor(anchor)
        self.problems.sort(key=lambda problem: problem.order)

    def check_start(self, anchor: Anchor, first_seq: int, first_prev: str, where: str) -> None:
        """The oldest record of the anchored chain against the start the anchor names."""
        if first_seq > anchor.start.seq:
            count = first_seq - anchor.start.seq
            self.problems.append(Problem(0, where, "removed", f"the chain {anchor.chain} begins at seq "
                                         f"{anchor.start.seq} (anchor) but its oldest record here is seq "
                                         f"{first_seq}: {count} record(s) at the start are missing"))
        elif first_seq == anchor.start.seq and first_prev != anchor.start.mac:
            self.problems.append(Problem(0, where, "edited", f"seq {first_seq} is not the record the anchor names as "
                                         "the chain's start"))

    def _check_anchor(self, anchor: Anchor) -> None:
        summary = self.chains.get(anchor.chain)
        if summary is None:
            self.problems.append(Problem(self._order + 1, "the anchor", "removed", f"the anchor names chain "
                                         f"{anchor.chain} up to seq {anchor.head.seq}, which has no record here"))
            return
        if summary.last < anchor.head.seq:
            cut = _seqs(summary.last + 1, anchor.head.seq)
            self.problems.append(Problem(self._order + 1, f"after {self._last_where}", "truncated",
                                         f"chain {anchor.chain} ends at seq {summary.last}, but its anchor (written "
                                         f"{anchor.ts}) names seq {anchor.head.seq}: {cut} cut off the end"))
            return
        mac = self._anchored.get((anchor.chain, anchor.head.seq))
        if mac is not None and mac != anchor.head.mac:
            self.problems.append(Problem(self._order + 1, "the anchor", "edited", f"seq {anchor.head.seq} is not "
                                         "the record the anchor names as the head"))

    @property
    def ok(self) -> bool:
        return not self.problems


def _previous_chain(start: object) -> tuple[str, int] | None:
    """(chain, seq) of the chain before, as a chain's first record names it."""
    previous = start.get("previous") if is_object(start) else None
    if not is_object(previous):
        return None
    chain, seq = previous.get("chain"), previous.get("seq")
    if isinstance(chain, str) and isinstance(seq, int):
        return chain, seq
    return None


def _seqs(low: int, high: int) -> str:
    return f"record seq {low} was" if low == high else f"records seq {low}..{high} were"


@dataclass
class FileVerification:
    walk: ChainWalk
    files: list[Path]
    anchor: Anchor | None
    anchor_path: Path


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip(b"\n")


def verify_files(path: Path, keys: dict[str, AuditKey], anchor_path: Path) -> FileVerification:
    """Walk `path`'s generations oldest first and check them against the anchor file."""
    walk = ChainWalk(keys, "file")
    anchor = _load_anchor(anchor_path, keys, walk)
    if anchor is not None:
        walk.watch(anchor.chain, anchor.head.seq)
    files = file_generations(path)
    first: tuple[int, str, str] | None = None
    for generation in files:
        for number, line in _lines(generation):
            where = f"{generation.name} line {number}"
            walk.feed(where, line)
            if first is None and anchor is not None:
                parsed = parse_line(line)
                if isinstance(parsed, Sealed) and parsed.chain == anchor.chain:
                    first = (parsed.seq, parsed.prev, where)
    if anchor is not None and first is not None:
        walk.check_start(anchor, *first)
    walk.finish(anchor)
    return FileVerification(walk, files, anchor, anchor_path)


def _load_anchor(path: Path, keys: dict[str, AuditKey], walk: ChainWalk) -> Anchor | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        walk.problems.append(Problem(0, str(path), "anchor", "the anchor file is missing, so records cut off the "
                                     "end of the log cannot be seen (the gateway writes it at its first record)"))
        return None
    except OSError as exc:
        walk.problems.append(Problem(0, str(path), "anchor", f"cannot read the anchor file "
                                     f"({exc.strerror or type(exc).__name__})"))
        return None
    try:
        return parse_anchor(data, keys)
    except AnchorError as exc:
        kind = "wrong key" if "another key" in str(exc) else "anchor"
        walk.problems.append(Problem(0, str(path), kind, str(exc)))
        return None

