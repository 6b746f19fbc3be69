"""An API call as endpoint handlers see it: the Call they receive, the Result a call answers.

The route table is `routes.py`; `dispatch.py` answers calls through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_pve_sim.access import Caller
from proxmox_mcp_pve_sim.sim import Sim


@dataclass
class Result:
    """What a call answers: data on 200, or status/message/errors."""

    status: int = 200
    data: Any = None
    message: str | None = None
    errors: dict[str, str] | None = None
    total: int | None = None


Dispatch = Callable[[Sim, Caller, str, str, dict[str, Any]], Awaitable[Result]]
"""Answer one API call: (sim, caller, method, concrete path, parameters) -> Result."""


@dataclass
class Call:
    sim: Sim
    caller: Caller
    params: dict[str, Any]
    dispatch: Dispatch
    """The dispatcher that made this call, for endpoints that run further calls (`/nodes/{node}/execute`)."""

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.params.get(key)
        return default if value is None else value


Handler = Callable[[Call], Any]
"""An endpoint: answers data (or an awaitable of it), or raises ApiError."""
