"""`pve-sim`: run a simulated Proxmox VE cluster over HTTPS and SSH."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from proxmox_mcp_pve_sim.faults import FaultRule, FaultRuleError, parse_cli_rule
from proxmox_mcp_pve_sim.server import ServerConfig, serve
from proxmox_mcp_pve_sim.sim import SimOptions

DESCRIPTION = """\
A Proxmox VE simulator faithful to the real API schema: an HTTPS API under /api2/json (tickets,
CSRF, API tokens with privilege separation, 400/401/403/500/501 like a node, 0/1 booleans, real
UPIDs and tasks) and an SSH face with an emulated host shell (pvesh, qm, pct and harmless system
commands; nothing is ever executed on this machine).

Once both faces accept connections it prints ONE JSON line on stdout, then logs only to stderr:
  {"event": "ready", "api_url", "host", "api_port", "fingerprint" (SHA-256 of the certificate,
   AA:BB:..), "cert_file", "nodes", "admin_token" and "readonly_token" ({user, token_id, secret,
   full_id, header}; the read-only one lacks VM.PowerMgmt), "root_password", "ssh_port",
   "ssh_node_ports" ({node: port}, one SSH listener per node, the first on --ssh-port), "ssh_user",
   "ssh_host_key_fingerprint" (SHA256:..), "ssh_host_public_key", "ssh_private_key" (path of an
   unencrypted ed25519 key the SSH face accepts), "pid", ...}
Secrets are random per start; nodes, guests, names, vmids and sizes are fixed by --seed.
"""

EPILOG = """\
fault injection at run time (outside /api2; send the admin token's Authorization header):
  GET    /_sim/faults      current rules
  POST   /_sim/faults      {"rules": [{"path": "REGEX", "method": "GET"|null, "latency_ms": 0,
                            "error_rate": 1.0, "status": 500, "message": "..."}]}  replaces all rules
  DELETE /_sim/faults      removes all rules
  POST   /_sim/reset       back to the seeded state (tasks cleared; secrets and rules kept)
  REGEX is searched in the API path after /api2/json (e.g. "^/nodes/[^/]+/qemu$").

SSH face: user root with the printed key or root_password; `direct-tcpip` forwarding only to
127.0.0.1/localhost on the API port (port 8006 is accepted as an alias for it).

SIGTERM or SIGINT stops it cleanly (exit 0).
"""


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535 (0 picks a free one)")
    return value


def _bounded(low: float, high: float, kind: type = int):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pve-sim", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address both faces listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=_port, default=8006, help="HTTPS API port, 0 = a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--ssh-port",
        type=_port,
        default=2222,
        help="SSH port of the first node, 0 = a free one; other nodes get free ports (default: %(default)s)",
    )
    parser.add_argument("--no-ssh", action="store_true", help="do not start the SSH face")
    parser.add_argument("--seed", type=int, default=7, help="seed for the cluster layout (default: %(default)s)")
    parser.add_argument(
        "--nodes", type=_bounded(1, 32), default=3, help="number of nodes, 1..32 (default: %(default)s)"
    )
    parser.add_argument(
        "--guests",
        type=_bounded(0, 500),
        default=8,
        help="number of guests (qemu VMs and LXC containers, vmids from 100), 0..500 (default: %(default)s)",
    )
    parser.add_argument(
        "--task-duration",
        type=_bounded(0, 3600, float),
        default=1.0,
        help="seconds a worker task (start, stop, snapshot, ...) runs (default: %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keeps pve-ssl.pem/.key, the SSH host and client keys (id_ed25519), the API token secrets and "
        "root password (secrets.json) and the ports chosen for 0 (ports.json) across restarts, as a real node "
        "keeps them across a reboot; default: a temporary directory removed on exit",
    )
    parser.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="REGEX=MS",
        help="add MS milliseconds to API calls whose path matches REGEX (repeatable)",
    )
    parser.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="REGEX=RATIO",
        help="answer 500 to a RATIO (0..1) of API calls whose path matches REGEX (repeatable)",
    )
    parser.add_argument(
        "--auth-fail-delay",
        type=_bounded(0, 10, float),
        default=0.0,
        help="seconds to delay 401 answers (a real node waits 3; default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default: %(default)s)",
    )
    return parser


def config_from_args(argv: list[str] | None = None) -> ServerConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    rules: list[FaultRule] = []
    try:
        rules += [parse_cli_rule(text, "latency_ms") for text in args.latency]
        rules += [parse_cli_rule(text, "error_rate") for text in args.error_rate]
    except FaultRuleError as exc:
        parser.error(f"fault rule: {exc}")
    options = SimOptions(
        seed=args.seed,
        nodes=int(args.nodes),
        guests=int(args.guests),
        task_duration=float(args.task_duration),
        auth_fail_delay=float(args.auth_fail_delay),
    )
    return ServerConfig(
        log_level=args.log_level,
        host=args.host,
        port=args.port,
        ssh_port=args.ssh_port,
        ssh=not args.no_ssh,
        state_dir=args.state_dir,
        options=options,
        fault_rules=rules,
    )


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(argv)
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(serve(config))
    except OSError as exc:
        print(f"pve-sim: cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
