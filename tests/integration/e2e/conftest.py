"""One demo stack (the README's demo command) shared by the end-to-end tests of a session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest

from tests.support.demo import DemoStack
from tests.support.mcp_client import SimClient


@pytest.fixture(scope="session")
def sim(demo: DemoStack) -> Iterator[SimClient]:
    with SimClient(demo.sim) as client:
        yield client


@pytest.fixture
async def http(demo: DemoStack) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def auth(demo: DemoStack) -> dict[str, Any]:
    return {"Authorization": f"Bearer {demo.token}"}


