"""Fixtures of the operations tests: a real sshd, the simulator and a NATS server, one each per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sshd import SshdServer, start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.close()
