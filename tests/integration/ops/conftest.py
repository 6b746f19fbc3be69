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
def compose_stack_session(tmp_path_factory: pytest.TempPathFactory,
                          request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    stack = start_stack(tmp_path_factory.mktemp("compose-stack"))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # into the test log, not the captured output
            reporter.write_line("")
            reporter.write_line("scripts/build-images (from the README's podman note):")
            for line in build_table(stack.log).splitlines():
                reporter.write_line("  " + line)
            reporter.write_line("  " + stack.log.strip().splitlines()[-1])
    _running.append(stack)
    try:
        yield stack
    finally:
        _running.clear()
        stack.down()


@pytest.fixture
def compose_stack(compose_stack_session: ComposeStack) -> ComposeStack:
    """The session's stack, started again (volumes kept) if the tests before stopped it."""
    if compose_stack_session not in _running:
        compose_stack_session.up()
        _running.append(compose_stack_session)
    return compose_stack_session


_running: list[ComposeStack] = []


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the stack after the last test that uses it, not at the end of the session: idle containers would
    take CPU from the tests after them."""
    if _running and (nextitem is None or "compose_stack" not in getattr(nextitem, "fixturenames", ())):
        _running.pop().stop()
