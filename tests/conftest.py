"""Session-wide fixtures: real binaries started once and shared, stopped at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_runtime.ssh import paramiko_pipes

from tests.support.control import thawed_relay
from tests.support.demo import DemoStack, start_demo
from tests.support.nats import NatsServer, start_nats


def pytest_configure(config: pytest.Config) -> None:
    # Tests open SSH channels in this process as the workers do in theirs: with the locked wake-up pipe their
    # entry points install (tests/integration/sim/test_tunnel_channels.py checks the entry points themselves).
    paramiko_pipes.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def nats_server(session_dir: Path) -> Iterator[NatsServer]:
    server = start_nats(session_dir / "nats")
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsClient]:
    """A client of the session's nats-server (tests with their own stack override it)."""
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="session")
def thawed_control(nats_server: NatsServer) -> Iterator[None]:
    """For tests that drive workers over the session NATS without a gateway: the freeze switch's relay, as a
    thawed gateway in local mode sends it (a worker refuses everything above read while it cannot read the
    switch). Tests that freeze start their own NATS."""
    with thawed_relay(nats_server.url):
        yield


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """The README's demo command, started once per session and shared."""
    stack = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        yield stack
    finally:
        stack.proc.stop()
