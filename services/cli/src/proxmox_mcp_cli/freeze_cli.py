"""`proxmox-mcp freeze` / `proxmox-mcp thaw`: the kill switch, from the deployment's own host (the parser lives
here and stays light; freeze_commands does the work)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any, add_env_file_option: Any) -> None:
    for name, what in (("freeze", "refuse every call above read scope on every gateway and worker"),
                       ("thaw", "end a freeze: calls above read work again")):
        parser = sub.add_parser(name, help=what)
        parser.add_argument("--reason", required=True, help="why (one line; shown in /health, in refusals and in "
                                                            "the audit)")
        parser.add_argument("--wait", type=float, default=5.0,
                            help="seconds to wait for a gateway to write the change to the audit (default 5; 0: "
                                 "do not wait)")
        add_env_file_option(parser)


def run(args: argparse.Namespace) -> int:
    from proxmox_mcp_cli.freeze_commands import run_freeze_command

    return run_freeze_command(frozen=args.command == "freeze", reason=args.reason, wait=args.wait)
