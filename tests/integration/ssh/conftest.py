"""One real sshd for the SSH tests of this folder (started once, stopped at the end), and a NATS client per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sshd import SshdServer, start_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.close()
