"""The freeze switch (kill switch) as it is stored and sent: who froze or thawed the deployment, when and why.

The state is one key in the control bucket (JetStream `PMCP_CONTROL`, or the gateway's local state file). Its
value keeps the last few changes, newest first, so a gateway that saw none of a quick freeze-and-thaw still
audits both. In local mode the gateway relays what it knows to the workers on core NATS (`FreezeBroadcast`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

FREEZE_KEY = "freeze"
"""The key holding the FreezeState JSON."""
FREEZE_AUDITED_KEY = "freeze-audited"
"""The seq of the newest change some gateway has written to the audit (compare-and-set: one record per change)."""
RECENT_CHANGES = 16
"""Changes kept in the value: a gateway that missed more than this many in a row audits the newest ones only."""
MAX_REASON = 500

ChangeOrigin = Literal["cli", "rest"]
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class FreezeChange(BaseModel):
    seq: int = Field(ge=1, description="Grows by one with each change")
    frozen: bool
    by: str = Field(min_length=1, max_length=200, description="Who: a token id, or cli:USER@HOST")
    at: datetime = Field(description="When the change was made (UTC)")
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    via: ChangeOrigin
    client: str | None = Field(default=None, max_length=100, description="The address an admin call came from")

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return check_reason(value)


def check_reason(reason: str) -> str:
    """A reason is one line of plain text (it ends up in /health, error messages and the audit)."""
    cleaned = reason.strip()
    if not cleaned:
        raise ValueError("a reason is required (what happened, so that others know why)")
    if len(cleaned) > MAX_REASON:
        raise ValueError(f"the reason is {len(cleaned)} characters long; at most {MAX_REASON}")
    if _CONTROL_CHARACTERS.search(cleaned):
        raise ValueError("the reason must be one line of text without control characters")
    return cleaned


class FreezeState(BaseModel):
    changes: list[FreezeChange] = Field(default_factory=list[FreezeChange], max_length=RECENT_CHANGES,
                                        description="Newest first; empty: never frozen")

    @property
    def latest(self) -> FreezeChange | None:
        return self.changes[0] if self.changes else None

    @property
    def frozen(self) -> bool:
        latest = self.latest
        return latest is not None and latest.frozen

    @property
    def seq(self) -> int:
        latest = self.latest
        return 0 if latest is None else latest.seq

    def with_change(self, *, frozen: bool, by: str, at: datetime, reason: str, via: ChangeOrigin,
                    client: str | None = None) -> FreezeState:
        change = FreezeChange(seq=self.seq + 1, frozen=frozen, by=by, at=at, reason=reason, via=via, client=client)
        return FreezeState(changes=[change, *self.changes][:RECENT_CHANGES])


class FreezeBroadcast(BaseModel):
    """What a gateway in local mode tells the workers, every interval, on each change and when asked."""

    state: FreezeState | None = Field(description="None: the gateway cannot read the state itself")
    revision: int = Field(default=0, ge=0, description="The state's revision in the gateway's store")
    age: float = Field(default=0.0, ge=0, description="Seconds since the gateway last confirmed the state")
    problem: str | None = Field(default=None, description="Why the state is unknown, when it is")
