"""`proxmox-mcp audit show|export|follow|verify`: read or check the audit log (the parser; the work is in
audit_commands and audit_verify_command)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="read, export or follow the audit log (the cluster's audit stream with "
                                         "PMCP_STATE=jetstream, else the local audit file)")
    audit.add_argument("--file", type=Path, help="read this audit file (and its rotated backups) instead")
    audit.add_argument("--env-file", type=Path, help="read settings the environment does not set from this file "
                                                     "(e.g. /etc/proxmox-mcp/gateway.env)")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    show = actions.add_parser("show", help="print records, one line each (the last 20 unless --since/--all)")
    export = actions.add_parser("export", help="write records as JSON lines, exactly as stored")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    follow = actions.add_parser("follow", help="print records as they are written, until interrupted")
    for parser in (show, export, follow):
        parser.add_argument("--since", help="records from this moment: a duration back (90m, 12h, 7d) or an ISO "
                                            "date/time (UTC unless it says otherwise)")
        parser.add_argument("--last", type=int, help="only the last N records (follow: then the new ones)")
        parser.add_argument("--token", help="only records of this token id")
        parser.add_argument("--tool", help="only records of this tool")
    show.add_argument("--all", action="store_true", help="every record, not only the last 20")
    verify = actions.add_parser("verify", help="check the audit chain: names the first record that was removed, "
                                               "edited or reordered, and records cut off the end; exit 1 if any")
    verify.add_argument("--key-file", type=Path, action="append", help="the audit key (default: "
                        "PMCP_AUDIT_KEY_FILE or STATE_DIR/audit.key); repeat for chains sealed with other keys")
    verify.add_argument("--anchor", type=Path, action="append", help="the anchor file (file: default the audit "
                        "file's path + .anchor; stream: optional, one per gateway, repeatable)")
    for parser in (show, follow):
        parser.add_argument("--json", action="store_true", help="print the records as stored (JSON lines)")


def run(args: argparse.Namespace) -> int:
    from proxmox_mcp_cli.audit_commands import run_audit_command

    return run_audit_command(args)
