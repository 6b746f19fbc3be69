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
