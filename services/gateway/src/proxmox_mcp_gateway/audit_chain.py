"""The audit chain's wire form: records sealed with HMAC-SHA256 under the gateway's audit key, and anchors.

A sealed record is the record's JSON line with the chain fields at its end:

    {...the record..., "chain": "<id>", "seq": N, "kid": "<key id>", "prev": "<mac of record N-1>", "mac": "<mac>"}

`mac` = HMAC-SHA256(key, the line's bytes up to `,"mac"`, closed with `}`): the bytes as written, so writer and
verifier never have to agree on a canonical JSON form. `prev` ties each record to the one before it and `seq`
numbers them, so a removed, edited or reordered record shows; only the key's holder can make a record that
passes. `kid` says which key sealed it (an HMAC of a fixed text: it names the key and reveals nothing of it).

An anchor is one small line, sealed the same way under its own domain, naming where a chain begins (the first
record that must still be there) and its head (the newest record made durable): kept apart from the log, it
lets a verifier tell a log whose newest records were cut off from a log that simply ends.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from proxmox_mcp_contracts.json_values import is_object

CHAIN_FIELDS = ("chain_start", "chain", "seq", "kid", "prev", "mac")
GENESIS = "0" * 64
"""`prev` of a chain's first record."""
CHAIN_START = "chain_start"
"""A field of a chain's first record (seq 1): why the chain began, and the chain before it if there was one."""
_KEY_ID_TEXT = b"proxmox-mcp audit key id"
_ANCHOR_DOMAIN = b"proxmox-mcp audit anchor\n"
_SEALED = re.compile(rb'(\{.*),"mac":"([0-9a-f]{64})"\}\r?\n?', re.S)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AuditKey:
    secret: bytes = field(repr=False)
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kid", hmac.new(self.secret, _KEY_ID_TEXT, sha256).hexdigest()[:16])

    def mac(self, body: bytes) -> str:
        return hmac.digest(self.secret, body, "sha256").hex()

    def anchor_mac(self, body: bytes) -> str:
        return hmac.digest(self.secret, _ANCHOR_DOMAIN + body, "sha256").hex()


@dataclass(frozen=True)
class ChainPoint:
    """A record of a chain by its sequence number and MAC (for a chain's start: the `prev` it must carry)."""

    seq: int
    mac: str


@dataclass(frozen=True)
class ChainHead:
    chain: str
    seq: int
    mac: str

    @classmethod
    def new(cls, chain: str) -> ChainHead:
        return cls(chain, 0, GENESIS)

    @property
    def point(self) -> ChainPoint:
        return ChainPoint(self.seq, self.mac)


def utc_timestamp(moment: float | None = None) -> str:
    now = time.time() if moment is None else moment
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def dumps(value: dict[str, Any]) -> bytes:
    """A record as the audit log writes it (compact, UTF-8, anything unknown as its str())."""
    return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False).encode()


def seal(record: dict[str, Any], key: AuditKey, head: ChainHead,
         opening: dict[str, Any] | None = None) -> tuple[bytes, ChainHead]:
    """The record's line (with its newline) as the next of `head`'s chain, and the new head; `opening`: the
    chain_start field of a chain's first record."""
    fields = {name: value for name, value in record.items() if name not in CHAIN_FIELDS}
    if opening is not None:
        fields[CHAIN_START] = opening
    fields.update(chain=head.chain, seq=head.seq + 1, kid=key.kid, prev=head.mac)
    body = dumps(fields)
    mac = key.mac(body)
    return body[:-1] + b',"mac":"' + mac.encode() + b'"}\n', ChainHead(head.chain, head.seq + 1, mac)


@dataclass(frozen=True)
class Sealed:
    """A line that has the chain's shape (whether its MAC is right is for `authentic` to say)."""

    record: dict[str, Any]
    body: bytes
    mac: str
    chain: str
    seq: int
    kid: str
    prev: str

    def authentic(self, key: AuditKey) -> bool:
        return hmac.compare_digest(key.mac(self.body), self.mac)

    @property
    def point(self) -> ChainPoint:
        return ChainPoint(self.seq, self.mac)

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.chain, self.seq, self.mac)

    @property
    def start(self) -> ChainPoint:
        """This record as a chain's start: its seq and the `prev` it carries."""
        return ChainPoint(self.seq, self.prev)


@dataclass(frozen=True)
class Plain:
    """A JSON record without chain fields: written before the log was chained (or inserted by someone)."""

    record: dict[str, Any]


@dataclass(frozen=True)
class Unreadable:
    reason: str


def parse_line(line: bytes) -> Sealed | Plain | Unreadable:
    try:
        value: object = json.loads(line)
    except ValueError:
        return Unreadable("not a JSON record (cut short or edited)")
    if not is_object(value):
        return Unreadable("not a JSON object")
    record: dict[str, Any] = value
    if not any(name in record for name in CHAIN_FIELDS):
        return Plain(record)
    match = _SEALED.fullmatch(line)
    chain, seq, kid, prev = (record.get(name) for name in ("chain", "seq", "kid", "prev"))
    if (match is None or not isinstance(chain, str) or not isinstance(kid, str) or not isinstance(prev, str)
            or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not _HEX64.match(prev)):
        return Unreadable("its chain fields are damaged (edited)")
    return Sealed(record=record, body=match.group(1) + b"}", mac=match.group(2).decode(), chain=chain, seq=seq,
                  kid=kid, prev=prev)


@dataclass(frozen=True)
class Anchor:
    chain: str
    kid: str
    start: ChainPoint
    """The chain's oldest record that must still be there: its seq and the `prev` it carries."""
    head: ChainPoint
    """The newest record made durable when the anchor was written."""
    ts: str


def anchor_line(key: AuditKey, chain: str, start: ChainPoint, head: ChainPoint, ts: str) -> bytes:
    body = dumps({"anchor": 1, "chain": chain, "kid": key.kid, "start": {"seq": start.seq, "prev": start.mac},
                  "head": {"seq": head.seq, "mac": head.mac}, "ts": ts})
    return body[:-1] + b',"mac":"' + key.anchor_mac(body).encode() + b'"}\n'


class AnchorError(ValueError):
    """The anchor cannot be used; the message says why (damaged, another key)."""


def parse_anchor(data: bytes, keys: dict[str, AuditKey]) -> Anchor:
    """The anchor, checked with the key that made it (keys by key id); AnchorError otherwise."""
    match = _SEALED.fullmatch(data.strip() + b"\n")
    try:
        value: object = json.loads(data)
    except ValueError:
        raise AnchorError("the anchor file is not a JSON record (damaged)") from None
    if match is None or not is_object(value):
        raise AnchorError("the anchor file has no MAC (damaged)")
    kid = value.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise AnchorError(f"the anchor was made with another key (key id {kid}, not {', '.join(keys)})")
    if not hmac.compare_digest(key.anchor_mac(match.group(1) + b"}"), match.group(2).decode()):
        raise AnchorError("the anchor's MAC does not match its content (edited)")
    try:
        start, head = value["start"], value["head"]
        return Anchor(chain=str(value["chain"]), kid=key.kid, start=ChainPoint(int(start["seq"]), str(start["prev"])),
                      head=ChainPoint(int(head["seq"]), str(head["mac"])), ts=str(value.get("ts", "")))
    except (KeyError, TypeError, ValueError):
        raise AnchorError("the anchor's fields are damaged") from None
