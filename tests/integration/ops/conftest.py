"""Fixtures of the operations tests: a real sshd per module, and one compose demo stack on a real container
engine per session, shared by every test that can share it (it takes about a minute to build and start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.compose_stack import ComposeStack, build_table, start_stack
from tests.support.sshd import SshdServer, start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def compose_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    stack = start_stack(tmp_path_factory.mktemp("compose-stack"))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line("scripts/build-images (from the README's podman note):")
        for line in build_table(stack.log).splitlines():
            reporter.write_line("  " + line)
        reporter.write_line("  " + stack.log.strip().splitlines()[-1])
    try:
        yield stack
    finally:
        stack.down()
