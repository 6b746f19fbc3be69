"""`proxmox-mcp`: run the demo, the whole stack, stdio, or one service."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from proxmox_mcp_runtime import event_loop
from proxmox_mcp_runtime.config import ConfigError, load_proxmox_config
from proxmox_mcp_runtime.env_file import load_env_file
from proxmox_mcp_runtime.event_loop import EventLoopError
from proxmox_mcp_runtime.logs import configure_logging

from proxmox_mcp_cli import audit_cli, doctor, freeze_cli, keygen, tokens_cli
from proxmox_mcp_cli.stack import EmbeddedStack, StackInfo, config_for_sim

if TYPE_CHECKING:
    from proxmox_mcp_cli.http_stack import HttpStackOptions


def _demo_prepare(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    def prepare(stack: EmbeddedStack) -> StackInfo:
        nats_url = stack.start_nats()
        sim = stack.start_sim(seed=args.seed, nodes=args.nodes, guests=args.guests)
        config = config_for_sim(sim)
        path = stack.write_config(config)
        stack.start_workers(nats_url, path)
        return StackInfo(nats_url=nats_url, config_path=path, config=config, sim=sim)

    return prepare


def _up_prepare(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    config = load_proxmox_config(config_file=args.config)

    def prepare(stack: EmbeddedStack) -> StackInfo:
        nats_url = stack.start_nats()
        path = stack.write_config(config)
        stack.start_workers(nats_url, path)
        return StackInfo(nats_url=nats_url, config_path=path, config=config)

    return prepare


def http_options(args: argparse.Namespace) -> HttpStackOptions:
    from proxmox_mcp_cli.http_stack import HttpStackOptions

    return HttpStackOptions(host=args.host, port=args.port, token=args.token,
                            log_level=os.environ.get("LOG_LEVEL", "INFO"), info_file=args.info_file)


def _run_http(args: argparse.Namespace, demo: bool) -> int:
    from proxmox_mcp_gateway.server import refuse_start

    from proxmox_mcp_cli.http_stack import run_http_stack

    configure_logging("proxmox-mcp", os.environ.get("LOG_LEVEL", "WARNING"))
    try:
        prepare = _demo_prepare(args) if demo else _up_prepare(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return event_loop.run(run_http_stack(http_options(args), prepare, demo=demo))
    except EventLoopError as exc:
        return refuse_start(exc)


def _run_stdio(args: argparse.Namespace) -> int:
    from proxmox_mcp_cli.stdio_stack import run_stdio_stack

    configure_logging("proxmox-mcp-stdio", os.environ.get("LOG_LEVEL", "WARNING"))
    return run_stdio_stack(demo=args.demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proxmox-mcp", description="MCP server for Proxmox VE clusters.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on 127.0.0.1 against a simulated cluster (pve-sim)")
    up = sub.add_parser("up", help="run NATS, both workers and the gateway against your cluster")
    for p in (demo, up):
        p.add_argument("--host", help="gateway bind address (default: PMCP_HOST or 127.0.0.1)")
        p.add_argument("--port", type=int, help="gateway port (default: PMCP_PORT or 8080; 0 picks a free one)")
        p.add_argument("--token", help="bearer token clients must send (default: PMCP_TOKEN, PMCP_TOKEN_FILE or a "
                                       "random one)")
        p.add_argument("--info-file", type=Path, help="write URL, token and process ids as JSON here (mode 0600)")
    demo.add_argument("--seed", type=int, default=7, help="simulated cluster seed")
    demo.add_argument("--nodes", type=int, default=3, help="simulated nodes")
    demo.add_argument("--guests", type=int, default=8, help="simulated guests")
    up.add_argument("--config", type=Path, help="TOML cluster config (default: PMCP_CONFIG or the SSH_*/PROXMOX_* "
                                                "environment variables)")

    stdio = sub.add_parser("stdio", help="serve MCP over stdin/stdout (NATS_URL, or an embedded stack)")
    stdio.add_argument("--demo", action="store_true", help="embedded stack against the simulator")
    for p in (demo, up, stdio):
        add_env_file_option(p)

    sub.add_parser("gateway", help="run the HTTP gateway only (containers, systemd)")
    sub.add_parser("ssh-worker", help="run the SSH worker only")
    sub.add_parser("api-worker", help="run the API worker only")
    doctor.add_parser(sub)
    keygen.add_parser(sub)
    tokens_cli.add_parser(sub)
    audit_cli.add_parser(sub)
    freeze_cli.add_parsers(sub, add_env_file_option)
    return parser


def add_env_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", default=".env", type=Path,
                        help="variables the environment does not set are read from this file (default .env)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "env_file", None) is not None:
        # Before anything reads a setting: a variable from the file is then one like any exported one, for this
        # process's settings and for the environment of the workers it starts. The environment wins.
        load_env_file(args.env_file)
    if args.command == "demo":
        return _run_http(args, demo=True)
    if args.command == "up":
        return _run_http(args, demo=False)
    if args.command == "stdio":
        return _run_stdio(args)
    if args.command == "doctor":
        return doctor.run_doctor(args)
    if args.command == "keygen":
        return keygen.run(args)
    if args.command == "token":
        return tokens_cli.run(args)
    if args.command == "audit":
        return audit_cli.run(args)
    if args.command in ("freeze", "thaw"):
        return freeze_cli.run(args)
    if args.command == "gateway":
        from proxmox_mcp_gateway.server import main as gateway_main

        gateway_main()
    elif args.command == "ssh-worker":
        from proxmox_mcp_ssh_worker.service import main as ssh_main

        ssh_main()
    elif args.command == "api-worker":
        from proxmox_mcp_api_worker.service import main as api_main

        api_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
