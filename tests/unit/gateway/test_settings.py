"""The gateway's settings."""

from __future__ import annotations

import pytest
from proxmox_mcp_gateway.settings import GatewaySettings


async def test_settings_refuse_bad_security_values() -> None:
    from pydantic import ValidationError

    for bad in ({"allowed_cidrs": "10.0.0.0/33"}, {"trusted_proxies": "proxy"}, {"rate_limit": "lots"},
                {"tool_rate_limits": "execute_command"}, {"max_body_bytes": 10}):
        with pytest.raises(ValidationError):
            GatewaySettings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("state, stale_after", [("local", 2.0), ("jetstream", 10.0)])
def test_the_freeze_switch_goes_unknown_after_a_window_longer_than_a_leader_election_on_jetstream(
    state: str, stale_after: float
) -> None:
    assert GatewaySettings(state=state).control_timing().stale_after == stale_after  # type: ignore[arg-type]
    assert GatewaySettings(state=state, control_stale_after=4).control_timing().stale_after == 4.0  # type: ignore[arg-type]
