"""`proxmox-mcp doctor`: walk the troubleshooting checklist for the configured cluster (or every one) and say
what to fix.

Same configuration as `up` (PMCP_CONFIG / --config, or the SSH_* / PROXMOX_* variables from the environment
and .env). Prints a table (or --json); exits 1 when any check fails, 0 otherwise (warnings do not fail).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:  # pyright: ignore[reportPrivateUsage] (argparse has no public name for it)
    parser = sub.add_parser("doctor", help="check the configured cluster end to end and say how to fix problems",
                            description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML cluster config (default: PMCP_CONFIG or the SSH_*/"
                        "PROXMOX_* environment variables)")
    parser.add_argument("--env-file", default=".env", type=Path,
                        help="variables the environment does not set are read from this file (default .env)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--cluster", help="which configured cluster to check (default: the default cluster)")
    which.add_argument("--all-clusters", action="store_true", help="check every configured cluster, one report "
                       "each (--json: {\"ok\", \"clusters\": [report, ...]})")
    parser.add_argument("--node", action="append", help="check only this SSH node (repeatable)")
    parser.add_argument("--tools", help="comma list of the tools this deployment uses, for the privilege check "
                        "(default: the six original tools)")
    parser.add_argument("--nats-url", help="check NATS and the workers there (default: NATS_URL if set)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network check (default 5)")
    parser.add_argument("--allow-root", action="store_true", help="logging in as root is intended")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def run_doctor(args: argparse.Namespace) -> int:
    from proxmox_mcp_runtime.ssh import paramiko_pipes

    from proxmox_mcp_cli.doctor_checks import diagnose, diagnose_all  # paramiko and friends: only for the doctor

    # The doctor opens SSH channels and tunnels as the workers do: with the same locked wake-up pipe.
    paramiko_pipes.install()
    if not args.all_clusters:
        report = diagnose(args)
        print(report.to_json() if args.json else report.to_table())
        return 1 if report.failed else 0
    reports = diagnose_all(args)
    if args.json:
        print(json.dumps({"ok": not any(r.failed for r in reports),
                          "clusters": [json.loads(r.to_json()) for r in reports]}, indent=2))
    else:
        print("\n\n".join(f"== cluster {r.cluster or '?'} ==\n{r.to_table()}" for r in reports))
    return 1 if any(r.failed for r in reports) else 0
