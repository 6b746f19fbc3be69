"""`proxmox-mcp audit verify`: check the audit chain of the local file (and its rotated backups, against its
anchor file) or, with PMCP_STATE=jetstream, of every gateway's chain in the PMCP_AUDIT stream. Exit status 0 and a
summary when nothing is wrong; 1 and the problems, the first bad record first; 2 when it cannot check at all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nats.js.errors
from nats.js import JetStreamContext
from proxmox_mcp_gateway.audit_chain import Anchor, AnchorError, AuditKey, parse_anchor
from proxmox_mcp_gateway.audit_chain_writer import default_anchor_path
from proxmox_mcp_gateway.audit_key import AuditKeyError, load_audit_key
from proxmox_mcp_gateway.audit_verify import FileVerification, Problem, verify_files
from proxmox_mcp_gateway.audit_verify_stream import StreamVerification, read_stream, verify_stream
from proxmox_mcp_gateway.jetstream_calls import UNANSWERED
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_gateway.state_names import AUDIT_STREAM

from proxmox_mcp_cli.cluster_state import StateCliError, gateway_settings, nats_connection

SHOWN_PROBLEMS = 50


def load_keys(paths: list[Path]) -> dict[str, AuditKey]:
    keys: dict[str, AuditKey] = {}
    for path in paths:
        try:
            key = load_audit_key(path)
        except AuditKeyError as exc:
            raise StateCliError(f"{exc} (--key-file, or PMCP_AUDIT_KEY_FILE)") from None
        keys[key.kid] = key
    return keys


async def run_verify(args: argparse.Namespace) -> int:
    settings = gateway_settings()
    keys = load_keys(args.key_file or [settings.audit_key_path()])
    if args.file is not None or settings.state != "jetstream":
        path: Path = args.file or settings.audit_path()
        anchor_path: Path = (args.anchor[0] if args.anchor else
                             default_anchor_path(path) if args.file is not None else settings.audit_anchor_path())
        if not path.exists():
            raise StateCliError(f"there is no audit file {path}")
        return print_file_result(verify_files(path, keys, anchor_path))
    return print_stream_result(await _verify_stream(settings, keys, _anchors(args.anchor or [], keys)))


async def _verify_stream(settings: GatewaySettings, keys: dict[str, AuditKey],
                         anchors: list[Anchor]) -> StreamVerification:
    async with nats_connection(settings, "proxmox-mcp-audit-verify") as nc:
        js = JetStreamContext(nc, timeout=5.0)
        try:
            info, stored = await read_stream(js)
        except nats.js.errors.NotFoundError:
            raise StateCliError(f"the audit stream {AUDIT_STREAM} does not exist: no gateway with "
                                "PMCP_STATE=jetstream has started on this cluster yet") from None
        except UNANSWERED as exc:
            raise StateCliError(f"NATS JetStream did not answer ({type(exc).__name__}): is a quorum of the "
                                "cluster up?") from None
    print(f"checking the JetStream stream {AUDIT_STREAM}", file=sys.stderr)
    return verify_stream(info, stored, keys, anchors)


def _anchors(paths: list[Path], keys: dict[str, AuditKey]) -> list[Anchor]:
    anchors: list[Anchor] = []
    for path in paths:
        try:
            anchors.append(parse_anchor(path.read_bytes(), keys))
        except OSError as exc:
            raise StateCliError(f"--anchor {path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        except AnchorError as exc:
            raise StateCliError(f"--anchor {path}: {exc}") from None
    return anchors


def print_file_result(result: FileVerification) -> int:
    walk = result.walk
    files = f"{len(result.files)} file(s)" + (f" ({result.files[0].name} .. {result.files[-1].name})"
                                              if len(result.files) > 1 else "")
    if not walk.ok:
        return _print_problems("audit log", walk.problems, f"{walk.records} records in {files}")
    print(f"audit log verified: {walk.records} records in {files}, nothing removed, edited or reordered")
    for summary in walk.chains.values():
        print(f"  chain {summary.chain}: seq {summary.first}..{summary.last} ({summary.records} records)")
    anchor = result.anchor
    if anchor is not None:
        last = walk.chains[anchor.chain].last if anchor.chain in walk.chains else anchor.head.seq
        past = last - anchor.head.seq
        print(f"  anchor {result.anchor_path}: chain starts at seq {anchor.start.seq}, head seq {anchor.head.seq} "
              f"written {anchor.ts}" + (f"; the {past} record(s) after it are not yet covered against being cut off"
                                        if past else "; the log ends there"))
    _print_notes(walk.notes, walk.legacy)
    return 0


def print_stream_result(result: StreamVerification) -> int:
    span = f"{result.records} records in {AUDIT_STREAM} (stream seq {result.first_seq}..{result.last_seq})"
    if not result.ok:
        return _print_problems(f"audit stream {AUDIT_STREAM}", result.problems, span)
    print(f"audit stream verified: {span}, {len(result.walks)} gateway chain(s), nothing removed, edited or "
          "reordered, no message deleted from the stream")
    for chain, walk in result.walks.items():
        summary = walk.chains[chain]
        writers = ", ".join(sorted(subject.rsplit(".", 1)[-1] for subject in result.writers.get(chain, set())))
        print(f"  chain {chain}: seq {summary.first}..{summary.last} ({summary.records} records; gateway "
              f"process(es) {writers})")
    _print_notes(result.notes, result.legacy)
    return 0


def _print_problems(what: str, problems: list[Problem], span: str) -> int:
    print(f"{what} NOT verified: {len(problems)} problem(s) in {span}; the first bad record first:")
    for problem in problems[:SHOWN_PROBLEMS]:
        print(f"  {problem}")
    if len(problems) > SHOWN_PROBLEMS:
        print(f"  ... and {len(problems) - SHOWN_PROBLEMS} more")
    return 1


def _print_notes(notes: list[str], legacy: int) -> None:
    for note in notes:
        print(f"  note: {note}")
    if legacy:
        print(f"  note: {legacy} record(s) from before the log was chained are not covered")
