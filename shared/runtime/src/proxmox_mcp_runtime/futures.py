"""Futures whose outcome nobody awaits any more (an abandoned request or thread)."""

from __future__ import annotations

import asyncio
from typing import Any


def retrieve_outcome(future: asyncio.Future[Any]) -> None:
    """A done-callback that takes an abandoned future's exception, so asyncio does not log it as never
    retrieved."""
    if not future.cancelled():
        future.exception()
