"""Run the README's demo command as a user would, and read what it reports."""

from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import REPO_ROOT, Proc, free_port, start_process, wait_until
from tests.support.readme import README


def readme_command(kind: str) -> str:
    """The first line of a README code block that runs `proxmox-mcp demo` (kind='demo') or the tests."""
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", README, flags=re.S)
    needle = "proxmox-mcp demo" if kind == "demo" else "scripts/test"
    for block in blocks:
        for line in block.splitlines():
            if needle in line:
                return line.strip()
    raise AssertionError(f"README.md has no code block with {needle!r}")


@dataclass
class DemoStack:
    proc: Proc
    mcp_url: str
    base_url: str
    token: str
    nats_url: str
    info: dict[str, Any]

    @property
    def sim(self) -> dict[str, Any]:
        return self.info["sim"]

    def pids(self) -> list[int]:
        return [self.info["pid"], *self.info["children"].values()]

    def interrupt(self) -> None:
        os.killpg(self.proc.popen.pid, signal.SIGINT)


def start_demo(workdir: Path, *, extra_env: dict[str, str] | None = None, timeout: float = 120) -> DemoStack:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = "test-" + os.urandom(12).hex()
    info_file = workdir / "demo-info.json"
    command = f"{readme_command('demo')} --port {port} --token {token} --info-file {info_file}"
    env = {"LOG_LEVEL": "INFO", **(extra_env or {})}
    proc = start_process("demo", ["bash", "-c", command], workdir, env=env, cwd=REPO_ROOT,
                         stdout_path=workdir / "demo.out")
    wait_until(info_file.exists, timeout=timeout, what="the demo to report ready", proc=proc, interval=0.1)
    info = json.loads(info_file.read_text())
    base = info["mcp_url"].removesuffix("/mcp")
    return DemoStack(proc=proc, mcp_url=info["mcp_url"], base_url=base, token=info["token"],
                     nats_url=info["nats_url"], info=info)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
