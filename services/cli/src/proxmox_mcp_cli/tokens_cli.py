"""`proxmox-mcp token create|list|revoke`: manage the gateway's bearer tokens (stored as hashes only)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.catalog import TOOLS
from proxmox_mcp_gateway.security import SecurityConfigError, load_profiles_file
from proxmox_mcp_gateway.tokens import TokenEntry, TokenStore, TokenStoreError, default_state_dir, parse_expiry
from proxmox_mcp_runtime.command_policy import PROFILES


def store_path(explicit: Path | None) -> Path:
    """--store, else PMCP_TOKENS_FILE, else PMCP_STATE_DIR/tokens.json, else the XDG state dir (as the gateway)."""
    if explicit is not None:
        return explicit
    if os.environ.get("PMCP_TOKENS_FILE"):
        return Path(os.environ["PMCP_TOKENS_FILE"])
    state = Path(os.environ["PMCP_STATE_DIR"]) if os.environ.get("PMCP_STATE_DIR") else default_state_dir()
    return state / "tokens.json"


def known_profiles() -> set[str]:
    extra = os.environ.get("PMCP_COMMAND_PROFILES")
    try:
        return set(PROFILES) | (set(load_profiles_file(Path(extra))) if extra else set())
    except SecurityConfigError as exc:
        raise TokenStoreError(str(exc)) from None


def add_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="create, list and revoke bearer tokens for the gateway")
    token.add_argument("--store", type=Path, help="token store file (default: PMCP_TOKENS_FILE or the state dir)")
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


def _split(values: list[str] | str | None) -> list[str]:
    items = values if isinstance(values, list) else [values or ""]
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _describe(entry: TokenEntry) -> str:
    tools = ",".join(entry.tools) if entry.tools else "all of its scope"
    cidrs = ",".join(entry.cidrs) if entry.cidrs else "any"
    expires = entry.expires_at.isoformat() if entry.expires_at else "never"
    state = "revoked" if entry.revoked else ("expired" if entry.expired() else "active")
    return (f"{entry.id}  {entry.name!r}  scope={entry.scope.value} profile={entry.profile} tools={tools} "
            f"cidrs={cidrs} expires={expires} {state}")


def run(args: argparse.Namespace) -> int:
    store = TokenStore(store_path(args.store))
    try:
        if args.token_command == "create":
            return _create(store, args)
        if args.token_command == "list":
            entries = store.load()
            if args.json:
                print(json.dumps([e.public() for e in entries], indent=1))
            else:
                print("\n".join(_describe(e) for e in entries) if entries else f"no tokens in {store.path}")
            return 0
        entry = store.revoke(args.id.removeprefix("pmcp_").split("_", 1)[0])
        print(f"revoked {entry.id} ({entry.name})")
        return 0
    except TokenStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _create(store: TokenStore, args: argparse.Namespace) -> int:
    expires = parse_expiry(args.expires) if args.expires else None
    new = store.create(name=args.name, scope=Scope(args.scope), profile=args.profile,
                       tools=_split(args.tools) or None, cidrs=_split(args.cidr), expires_at=expires,
                       known_profiles=known_profiles(), known_tools={spec.name for spec in TOOLS})
    if args.json:
        print(json.dumps({**new.entry.public(), "token": new.secret}))
        return 0
    print(f"created {_describe(new.entry)}")
    print(f"store: {store.path}")
    print("token (shown once; keep it secret):")
    print(new.secret)
    return 0
