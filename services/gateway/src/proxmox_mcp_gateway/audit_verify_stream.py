"""Checking the audit chains in the PMCP_AUDIT stream: one chain per gateway audit file, each walked in its own
sequence order (gateways publish concurrently, so the stream interleaves and may swap neighbours; the chain's
seq, not the stream's order, says which record comes first).

Beside the chains, the stream's own numbering is an anchor no gateway can rewrite: JetStream gives every message
the next stream sequence number and keeps `last_seq` when messages are deleted, so a message deleted from the
stream (`nats stream rmm`, also the newest ones) leaves a hole in the numbering, and a purge moves `first_seq`.
Per-gateway anchor files (`--anchor`) add each chain's anchored head.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import nats.errors
from nats.js import JetStreamContext, api

from proxmox_mcp_gateway.audit_chain import Anchor, AuditKey, Plain, Sealed, Unreadable, parse_line
from proxmox_mcp_gateway.audit_verify import ChainWalk, Problem
from proxmox_mcp_gateway.state_names import AUDIT_STREAM, AUDIT_SUBJECTS


@dataclass(frozen=True)
class StoredRecord:
    stream_seq: int
    subject: str
    data: bytes


@dataclass
class StreamVerification:
    first_seq: int
    last_seq: int
    records: int
    walks: dict[str, ChainWalk]
    writers: dict[str, set[str]]
    """Chain -> the subjects (pmcp.audit.<gateway process id>) its records came from."""
    problems: list[Problem] = field(default_factory=list[Problem])
    notes: list[str] = field(default_factory=list[str])
    legacy: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


async def read_stream(js: JetStreamContext, poll: float = 1.0) -> tuple[api.StreamInfo, list[StoredRecord]]:
    """Every message in the stream up to the last one stored when reading began."""
    info = await js.stream_info(AUDIT_STREAM)
    last = int(info.state.last_seq or 0)
    records: list[StoredRecord] = []
    if int(info.state.messages or 0) == 0:
        return info, records
    sub = await js.subscribe(AUDIT_SUBJECTS, stream=AUDIT_STREAM, ordered_consumer=True,
                             config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL))
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=poll)
            except nats.errors.TimeoutError:
                return info, records  # nothing more to deliver
            seq = msg.metadata.sequence.stream
            if seq > last:
                return info, records
            records.append(StoredRecord(seq, msg.subject, msg.data))
            if seq == last or msg.metadata.num_pending == 0:
                return info, records
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def verify_stream(info: api.StreamInfo, stored: list[StoredRecord], keys: dict[str, AuditKey],
                  anchors: list[Anchor]) -> StreamVerification:
    first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
    result = StreamVerification(first, last, len(stored), {}, {})
    deleted = _holes(first, last, [record.stream_seq for record in stored])
    for low, high in deleted:
        which = f"message {low} was" if low == high else f"messages {low}..{high} were"
        result.problems.append(Problem(low, f"stream seq {low}", "removed", f"stream {which} deleted from "
                                       f"{AUDIT_STREAM} (the stream's numbering has a hole there)"))
    _check_purge(info, result)
    by_chain: dict[str, list[tuple[Sealed, StoredRecord]]] = {}
    for record in stored:
        parsed = parse_line(record.data)
        where = f"stream seq {record.stream_seq}"
        if isinstance(parsed, Unreadable):
            result.problems.append(Problem(record.stream_seq, where, "unreadable", parsed.reason))
        elif isinstance(parsed, Plain):
            if by_chain:
                result.problems.append(Problem(record.stream_seq, where, "inserted", "a record without chain fields "
                                               "after the gateways began chaining"))
            else:
                result.legacy += 1
        else:
            by_chain.setdefault(parsed.chain, []).append((parsed, record))
    anchored = {anchor.chain: anchor for anchor in anchors}
    for chain, records in by_chain.items():
        walk = ChainWalk(keys, "stream")
        anchor = anchored.pop(chain, None)
        if anchor is not None:
            walk.watch(chain, anchor.head.seq)
        for _, record in sorted(records, key=lambda pair: (pair[0].seq, pair[1].stream_seq)):
            walk.feed(f"stream seq {record.stream_seq}", record.data, order=record.stream_seq)
        walk.finish(anchor)
        result.walks[chain] = walk
        result.writers[chain] = {record.subject for _, record in records}
        for problem in walk.problems:
            if problem.kind == "removed" and not deleted:
                problem = Problem(problem.order, problem.where, problem.kind, problem.detail + NEVER_STORED)
            result.problems.append(problem)
        result.notes.extend(walk.notes)
        if walk.duplicates:
            result.notes.append(f"chain {chain}: {walk.duplicates} record(s) stored twice (a gateway stored them "
                                "again after a failed acknowledgement; identical copies)")
    for anchor in anchored.values():
        result.problems.append(Problem(last + 1, "an anchor", "removed", f"the anchor names chain {anchor.chain} "
                                       f"up to seq {anchor.head.seq}, which has no record in the stream"))
    result.problems.sort(key=lambda problem: problem.order)
    return result


NEVER_STORED = ("; the stream's numbering has no hole, so they were never stored in it: a gateway that died "
                "between writing a record to its file and the stream's acknowledgement (that call got no reply), "
                "or a stream that was recreated. The gateway's own audit file has them: verify it with --file")


def _holes(first: int, last: int, seqs: list[int]) -> list[tuple[int, int]]:
    holes: list[tuple[int, int]] = []
    expected = first
    for seq in sorted(seqs):
        if seq > expected:
            holes.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    if first and expected <= last:
        holes.append((expected, last))
    return holes


def _check_purge(info: api.StreamInfo, result: StreamVerification) -> None:
    if result.first_seq <= 1:
        return
    config = info.config
    limited = any(value is not None and value > 0 for value in
                  (config.max_age, config.max_msgs, config.max_bytes, config.max_msgs_per_subject))
    gone = f"messages 1..{result.first_seq - 1}" if result.first_seq > 2 else "message 1"
    if limited:
        result.notes.append(f"{gone} of {AUDIT_STREAM} were removed by the stream's limits (retention)")
    else:
        result.problems.append(Problem(0, "stream start", "removed", f"{gone} of {AUDIT_STREAM} are gone although "
                                       "the stream has no limits that remove messages: deleted or purged"))
