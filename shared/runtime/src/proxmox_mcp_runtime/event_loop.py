"""The event loop every service runs on: uvloop where it can be imported (less CPU per call), asyncio's own
otherwise or when PMCP_EVENT_LOOP=asyncio asks for it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopChoice = Literal["auto", "uvloop", "asyncio"]
ENV = "PMCP_EVENT_LOOP"


class EventLoopError(ValueError):
    pass


def loop_choice() -> LoopChoice:
    """PMCP_EVENT_LOOP (auto, uvloop or asyncio; default auto). Also the value uvicorn's `loop` option takes."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", "uvloop", "asyncio"):
        raise EventLoopError(f"{ENV}={value!r} is not one of auto, uvloop, asyncio")
    return value  # type: ignore[return-value]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for the configured choice; None means asyncio's default loop."""
    choice = loop_choice()
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise EventLoopError(f"{ENV}=uvloop but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the configured loop (same Ctrl-C and shutdown behaviour)."""
    try:
        factory = loop_factory()
    except EventLoopError:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
