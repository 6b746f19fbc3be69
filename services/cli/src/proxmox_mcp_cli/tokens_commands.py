"""`proxmox-mcp token create|list|revoke|import`: what the commands do (the parser lives in tokens_cli, which
stays light so that every other subcommand, the workers included, does not load the gateway).

The store is the token file (PMCP_STATE=local, or --store) or the PMCP_TOKENS bucket of the NATS cluster
(PMCP_STATE=jetstream, NATS_URL): the same entries and rules either way."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.catalog import TOOLS
from proxmox_mcp_gateway.state_names import TOKENS
from proxmox_mcp_gateway.token_kv import KvTokenStore
from proxmox_mcp_gateway.tokens import (
    NewToken,
    TokenEntry,
    TokenGrant,
    TokenStore,
    TokenStoreError,
    default_state_dir,
    parse_expiry,
)
from proxmox_mcp_runtime.command_policy import PROFILES, PROFILES_ENV, ProfileConfigError, load_configured_profiles
from proxmox_mcp_runtime.env_file import load_env_file
from proxmox_mcp_runtime.kv import KvError, KvUnavailableError
from proxmox_mcp_runtime.kv.jetstream import JetStreamState

from proxmox_mcp_cli.cluster_state import StateCliError, gateway_settings, nats_connection


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


def _grant(args: argparse.Namespace) -> TokenGrant:
    expires = parse_expiry(args.expires) if args.expires else None
    return TokenGrant.checked(name=args.name, scope=Scope(args.scope), profile=args.profile,
                              tools=_split(args.tools) or None, cidrs=_split(args.cidr), expires_at=expires,
                              known_profiles=known_profiles(), known_tools={spec.name for spec in TOOLS})


def _token_id(text: str) -> str:
    return text.removeprefix("pmcp_").split("_", 1)[0]


def run_token_command(args: argparse.Namespace) -> int:
    if args.env_file is not None:
        load_env_file(args.env_file)
    try:
        if args.store is None and os.environ.get("PMCP_STATE", "").strip() == "jetstream":
            return asyncio.run(_on_jetstream(args))
        if args.token_command == "import":
            raise TokenStoreError("token import copies the token file into the NATS cluster's token bucket: set "
                                  "PMCP_STATE=jetstream and NATS_URL (as for the gateways)")
        return _on_file(TokenStore(store_path(args.store)), args)
    except (TokenStoreError, StateCliError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _on_file(store: TokenStore, args: argparse.Namespace) -> int:
    if args.token_command == "create":
        new = store.add(_grant(args))
        return _print_created(new, f"store: {store.path}", args.json)
    if args.token_command == "list":
        return _print_list(store.load(), f"no tokens in {store.path}", args.json)
    entry = store.revoke(_token_id(args.id))
    print(f"revoked {entry.id} ({entry.name})")
    return 0


async def _on_jetstream(args: argparse.Namespace) -> int:
    settings = gateway_settings()
    async with nats_connection(settings, "proxmox-mcp-token-cli") as nc:
        try:
            bucket = await JetStreamState(nc, replicas=settings.state_replicas,
                                          timeout=min(settings.state_timeout, 5.0)).bucket(TOKENS)
            store = KvTokenStore(bucket)
            if args.token_command == "create":
                new = await store.create(_grant(args))
                return _print_created(new, f"store: JetStream bucket {TOKENS.name} (every gateway sees it within "
                                           "a second)", args.json)
            if args.token_command == "list":
                return _print_list(await store.load(), f"no tokens in JetStream bucket {TOKENS.name}", args.json)
            if args.token_command == "import":
                source = args.file or settings.tokens_path()
                result = await store.import_file(source)
                print(f"imported {result.imported} token(s) from {source} into JetStream bucket {TOKENS.name}; "
                      f"{result.skipped} already there were left as they are")
                return 0
            entry = await store.revoke(_token_id(args.id))
        except KvUnavailableError:
            raise StateCliError("NATS JetStream did not answer: is a quorum of the cluster up?") from None
        except KvError as exc:
            raise StateCliError(str(exc)) from None
    print(f"revoked {entry.id} ({entry.name}); every gateway refuses it within a second")
    return 0


def _print_created(new: NewToken, where: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({**new.entry.public(), "token": new.secret}))
        return 0
    print(f"created {_describe(new.entry)}")
    print(where)
    print("token (shown once; keep it secret):")
    print(new.secret)
    return 0


def _print_list(entries: list[TokenEntry], empty: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps([e.public() for e in entries], indent=1))
    else:
        print("\n".join(_describe(e) for e in entries) if entries else empty)
    return 0
