"""A fresh key-value bucket on each backend (a local SQLite file, JetStream on the session's nats-server)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from proxmox_mcp_runtime.kv import BucketSpec, KeyValueStore
from proxmox_mcp_runtime.kv.jetstream import JetStreamState
from proxmox_mcp_runtime.kv.local import LocalState

from tests.support.nats import NatsServer

_counter = itertools.count()


@pytest.fixture(params=["local", "jetstream"])
async def bucket(
    request: pytest.FixtureRequest, tmp_path: Path, nats_server: NatsServer
) -> AsyncIterator[KeyValueStore]:
    spec = BucketSpec(name=f"test_{next(_counter)}_{int(time.time() * 1000) % 100000}")
    if request.param == "local":
        state = LocalState(tmp_path / "state.db", poll_interval=0.05)
        yield await state.bucket(spec)
        await state.close()
    else:
        nc = await nats.connect(nats_server.url)
        try:
            yield await JetStreamState(nc).bucket(spec)
        finally:
            await nc.close()
