"""`proxmox-mcp token create|list|revoke`: what the commands do (the parser lives in tokens_cli, which stays
light so that every other subcommand, the workers included, does not load the gateway)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.catalog import TOOLS
from proxmox_mcp_gateway.tokens import TokenEntry, TokenStore, TokenStoreError, default_state_dir, parse_expiry
from proxmox_mcp_runtime.command_policy import PROFILES, PROFILES_ENV, ProfileConfigError, load_configured_profiles


def store_path(explicit: Path | None) -> Path:
    """--store, else PMCP_TOKENS_FILE, else PMCP_STATE_DIR/tokens.json, else the XDG state dir (as the gateway)."""
    if explicit is not None:
        return explicit
    if os.environ.get("PMCP_TOKENS_FILE"):
        return Path(os.environ["PMCP_TOKENS_FILE"])
    state = Path(os.environ["PMCP_STATE_DIR"]) if os.environ.get("PMCP_STATE_DIR") else default_state_dir()
    return state / "tokens.json"


def known_profiles() -> set[str]:
    try:
        return set(PROFILES) | set(load_configured_profiles(os.environ.get(PROFILES_ENV)))
    except ProfileConfigError as exc:
        raise TokenStoreError(str(exc)) from None


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


def run_token_command(args: argparse.Namespace) -> int:
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
