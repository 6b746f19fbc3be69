"""`proxmox-mcp audit show|export|follow` (and `verify`, in audit_verify_command): the audit records from the
cluster's PMCP_AUDIT stream (PMCP_STATE=jetstream, NATS_URL) or from the local audit file and its rotated backups
(--file, or local state)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import nats.js.errors
from nats.js import JetStreamContext
from proxmox_mcp_gateway.audit_read import ReadFrom, file_lines, stream_lines
from proxmox_mcp_gateway.jetstream_calls import UNANSWERED
from proxmox_mcp_gateway.state_names import AUDIT_STREAM
from proxmox_mcp_runtime.env_file import load_env_file

from proxmox_mcp_cli.cluster_state import StateCliError, gateway_settings, nats_connection

SHOW_DEFAULT_LAST = 20
_DURATION = re.compile(r"^(?P<n>\d{1,7})(?P<unit>[smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`90m`, `12h`, `7d` back from now, or an ISO 8601 date/time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=int(match.group("n")) * _UNITS[match.group("unit")])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise StateCliError(f"--since {text!r}: give a duration like 90m, 12h, 7d or an ISO date/time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_from(args: argparse.Namespace) -> ReadFrom:
    if args.last is not None and args.last < 0:
        raise StateCliError("--last must be 0 or more")
    since = parse_since(args.since) if args.since else None
    last = args.last
    if args.audit_command == "show" and last is None and since is None and not args.all:
        last = SHOW_DEFAULT_LAST
    keep = _filter(args.token, args.tool) if args.token or args.tool else None
    return ReadFrom(last=last, since=since, only_new=args.audit_command == "follow", keep=keep)


def _filter(token: str | None, tool: str | None) -> Callable[[bytes], bool]:
    def keep(line: bytes) -> bool:
        record = _parsed(line)
        return (token is None or record.get("token_id") == token) and (tool is None or record.get("tool") == tool)

    return keep


def run_audit_command(args: argparse.Namespace) -> int:
    if args.env_file is not None:
        load_env_file(args.env_file)
    try:
        if args.audit_command == "verify":
            from proxmox_mcp_cli.audit_verify_command import run_verify

            return asyncio.run(run_verify(args))
        return asyncio.run(_run(args, read_from(args)))
    except StateCliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


async def _run(args: argparse.Namespace, start: ReadFrom) -> int:
    follow = args.audit_command == "follow"
    settings = gateway_settings()
    with _output(args) as out:
        if args.file is not None or settings.state != "jetstream":
            path = args.file or settings.audit_path()
            print(f"reading {path}" + (" and its rotated backups" if not follow else ""), file=sys.stderr)
            return await _emit(file_lines(path, start, follow=follow), args, out)
        async with nats_connection(settings, "proxmox-mcp-audit-cli") as nc:
            print(f"reading the JetStream stream {AUDIT_STREAM}", file=sys.stderr)
            js = JetStreamContext(nc, timeout=5.0)
            try:
                return await _emit(stream_lines(js, start, follow=follow), args, out)
            except nats.js.errors.NotFoundError:
                raise StateCliError(f"the audit stream {AUDIT_STREAM} does not exist: no gateway with "
                                    "PMCP_STATE=jetstream has started on this cluster yet") from None
            except UNANSWERED as exc:
                raise StateCliError(f"NATS JetStream did not answer ({type(exc).__name__}): is a quorum of the "
                                    "cluster up?") from None


@contextlib.contextmanager
def _output(args: argparse.Namespace) -> Generator[IO[bytes]]:
    out_path = getattr(args, "out", None)
    if out_path is None:
        yield sys.stdout.buffer
        return
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


async def _emit(lines: AsyncGenerator[bytes], args: argparse.Namespace, out: IO[bytes]) -> int:
    raw = args.audit_command == "export" or getattr(args, "json", False)
    count = 0
    async for line in lines:
        out.write(line + b"\n" if raw else (summary(_parsed(line)) + "\n").encode())
        count += 1
        if args.audit_command == "follow":
            out.flush()
    out.flush()
    if args.audit_command == "export":
        print(f"exported {count} record(s)", file=sys.stderr)
    return 0


def _parsed(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {"event": "unreadable", "message": "not a JSON record"}
    return value if isinstance(value, dict) else {"event": "unreadable"}  # pyright: ignore[reportUnknownVariableType]


def summary(record: dict[str, Any]) -> str:
    """One line a person can scan: when, what happened, to which token and tool, how long, the request id."""
    what = record.get("tool") or record.get("path") or "-"
    duration = record.get("duration_ms")
    parts = [str(record.get("ts", "-")), f"{record.get('event', '-'):<24}", f"{record.get('result', '-'):<17}",
             f"token={record.get('token_id') or '-'}", f"tool={what}",
             f"{duration}ms" if duration is not None else "-", f"request={record.get('request_id') or '-'}"]
    message = record.get("message")
    if message and record.get("result") not in (None, "ok"):
        parts.append(f"({str(message)[:160]})")
    return "  ".join(parts)
