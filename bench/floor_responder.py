"""The floor of a list_vms call: a NATS responder that does nothing but the upstream GET the api-worker makes.

On each request on SUBJECT it makes GET /cluster/resources?type=vm through the api-worker's own HTTPS backend
(proxmoxer's session over requests in the backend's thread pool, TLS pinned to the cluster's certificate, the
same connection pool) and replies the JSON data. No envelope, validation, policy, audit or result model: what
the gateway + NATS + api-worker path costs above this is the price of everything they add.
Run by bench/stack_bench.py:
  python bench/floor_responder.py --nats URL --config clusters.toml --subject bench.floor
It prints "ready" on stdout once subscribed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

import nats
from nats.aio.msg import Msg
from proxmox_mcp_api_worker.pve_client import HttpsBackend
from proxmox_mcp_runtime.config import load_config_file
from proxmox_mcp_runtime.event_loop import run


async def serve(nats_url: str, config: Path, subject: str) -> None:
    cluster = load_config_file(config).clusters[0]
    host = cluster.api_host()
    assert host, "the cluster has no API host"
    backend = HttpsBackend(cluster.name, cluster.api, host)
    nc = await nats.connect(nats_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def answer(msg: Msg) -> None:
        data = await backend.request("GET", "/cluster/resources", {"type": "vm"}, timeout=10)
        await msg.respond(json.dumps(data).encode())

    in_flight: set[asyncio.Task[None]] = set()

    async def dispatch(msg: Msg) -> None:
        # nats.py runs a subscription's callbacks one at a time; the worker answers requests concurrently.
        task = asyncio.create_task(answer(msg))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    await nc.subscribe(subject, cb=dispatch)
    await nc.flush()
    print("ready", flush=True)
    await stop.wait()
    await nc.drain()
    await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--subject", default="bench.floor")
    args = parser.parse_args()
    run(serve(args.nats, args.config, args.subject))
    sys.exit(0)


if __name__ == "__main__":
    main()
