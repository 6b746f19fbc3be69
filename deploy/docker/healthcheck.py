"""The compose services' healthcheck: exit 0 when every check passes, 1 (with the reason) otherwise.

  python /opt/proxmox-mcp/healthcheck.py http://127.0.0.1:8080/health        an HTTP 2xx answer
  python /opt/proxmox-mcp/healthcheck.py --file /data/ready.json tcp://127.0.0.1:8006
                                                                             a file exists; a port accepts

A program with plain arguments rather than `python -c "<code with spaces>"`: podman's Docker API splits a
healthcheck's arguments on spaces (podman#26519), which turns inline code into a syntax error there.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


def check(target: str, timeout: float) -> str | None:
    """None when `target` is healthy, else why not."""
    url = urllib.parse.urlsplit(target)
    try:
        if url.scheme == "tcp":
            with socket.create_connection((url.hostname or "127.0.0.1", url.port or 0), timeout):
                return None
        if url.scheme == "http":
            with urllib.request.urlopen(target, timeout=timeout) as response:
                return None if 200 <= response.status < 300 else f"{target}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{target}: HTTP {exc.code}"
    except OSError as exc:
        return f"{target}: {exc}"
    return f"{target}: give an http:// or tcp:// address"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Healthcheck of a proxmox-mcp container.")
    parser.add_argument("--file", action="append", default=[], type=Path, help="a file that must exist")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per check (default 3)")
    parser.add_argument("targets", nargs="*", help="http://host:port/path or tcp://host:port")
    args = parser.parse_args(argv)
    problems = [f"{path} is missing" for path in args.file if not path.exists()]
    problems += [p for p in (check(t, args.timeout) for t in args.targets) if p]
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
