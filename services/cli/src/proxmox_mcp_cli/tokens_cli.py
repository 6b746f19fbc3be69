"""`proxmox-mcp token create|list|revoke|import`: manage the gateway's bearer tokens (stored as hashes only), in
the token file or, with PMCP_STATE=jetstream, in the cluster's PMCP_TOKENS bucket."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from proxmox_mcp_contracts.envelope import Scope


def add_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="create, list and revoke bearer tokens for the gateway")
    token.add_argument("--store", type=Path, help="token store file (default: PMCP_TOKENS_FILE or the state dir); "
                                                  "with PMCP_STATE=jetstream the tokens live in the NATS cluster "
                                                  "(NATS_URL) unless --store is given")
    token.add_argument("--env-file", type=Path, help="read settings the environment does not set from this file "
                                                     "(e.g. /etc/proxmox-mcp/gateway.env)")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser("create", help="create a token and print its secret once")
    create.add_argument("--name", required=True, help="who or what uses it (unique among live tokens)")
    create.add_argument("--scope", required=True, choices=[s.value for s in Scope],
                        help="read < operate < exec < admin (each includes the ones below)")
    create.add_argument("--profile", help="command profile for execute_command (default: readonly; admin for "
                                          "admin tokens; operator adds qm/pct lifecycle)")
    create.add_argument("--tools", help="comma list: only these tools (default: every tool of the scope)")
    create.add_argument("--cidr", action="append", default=[],
                        help="source network allowed to use the token (repeat or comma list; default: any)")
    create.add_argument("--expires", help="lifetime (30d, 12h, 90m, 2w) or an ISO date/time (default: never)")
    create.add_argument("--json", action="store_true", help="print the token and its details as JSON")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a token; the gateway refuses it on the next request")
    revoke.add_argument("id", help="token id (from `token list`, or the part after pmcp_)")
    imports = actions.add_parser("import", help="copy the token file into the cluster's token bucket "
                                                "(PMCP_STATE=jetstream); ids already there are left alone")
    imports.add_argument("--file", type=Path, help="token file (default: PMCP_TOKENS_FILE or the state dir's)")


def run(args: argparse.Namespace) -> int:
    from proxmox_mcp_cli.tokens_commands import run_token_command

    return run_token_command(args)
