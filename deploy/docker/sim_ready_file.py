"""Run pve-sim and keep its ready line in a file (mode 0600) for the compose `config` step, instead of in the
container log: the line holds the simulator's generated tokens and passwords.

  python sim_ready_file.py --ready-file /data/ready.json -- pve-sim --host 0.0.0.0 ...

The file is written atomically once the simulator is ready and removed when it stops, so a stopped
simulator never leaves a stale file behind. Signals are passed on; the exit status is pve-sim's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path


def resolve(program: str) -> str:
    found = shutil.which(program)
    if found:
        return found
    beside = Path(sys.executable).parent / program
    return str(beside) if beside.exists() else program


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run pve-sim and write its ready line to a file.")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- pve-sim [options]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the simulator's command after --")
    args.ready_file.unlink(missing_ok=True)
    child = subprocess.Popen([resolve(command[0]), *command[1:]], stdout=subprocess.PIPE, text=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))

    def relay() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                ready = json.loads(line)
            except ValueError:
                sys.stdout.write(line)
                sys.stdout.flush()
                continue
            if isinstance(ready, dict) and not args.ready_file.exists():
                write_private(args.ready_file, json.dumps(ready) + "\n")
                print(f"pve-sim is ready; its details (with secrets) are in {args.ready_file}", flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        code = child.wait()
    finally:
        reader.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            args.ready_file.unlink()
    return code


if __name__ == "__main__":
    sys.exit(main())
