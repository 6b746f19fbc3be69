"""The services' event loop: uvloop by default, asyncio's own on request, and a clear error for anything else."""

from __future__ import annotations

import asyncio

import pytest
from proxmox_mcp_runtime import event_loop
from proxmox_mcp_runtime.event_loop import EventLoopError


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize("value", ["", "auto", "uvloop", " UVLOOP "])
def test_uvloop_runs_the_services_by_default_and_on_request(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(event_loop.ENV, value)
    assert event_loop.run(_loop_module()).startswith("uvloop")


def test_asyncio_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.loop_choice() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")


def test_an_unknown_choice_is_refused_naming_the_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "tokio")
    with pytest.raises(EventLoopError, match=r"PMCP_EVENT_LOOP='tokio' is not one of auto, uvloop, asyncio"):
        event_loop.run(_loop_module())
