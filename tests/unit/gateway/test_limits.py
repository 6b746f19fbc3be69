"""Rate specs and the token bucket."""

from __future__ import annotations

import pytest
from proxmox_mcp_gateway.limits import RateSpec, TokenBucket, parse_tool_rates


def test_rate_specs_parse_and_bad_ones_say_the_form() -> None:
    assert RateSpec.parse("120/m") == RateSpec(120, 60)
    assert RateSpec.parse("5/2s") == RateSpec(5, 2)
    assert RateSpec.parse("2/500ms") == RateSpec(2, 0.5)
    assert RateSpec.parse("off") is None
    for bad in ("fast", "10", "-1/s", "0/s", "5/0s"):
        with pytest.raises(ValueError, match="N/PERIOD"):
            RateSpec.parse(bad)
    assert parse_tool_rates("execute_command=1/s, vm_action=off") == {"execute_command": RateSpec(1, 1),
                                                                       "vm_action": None}
    with pytest.raises(ValueError):
        parse_tool_rates("execute_command")


def test_a_bucket_refills_evenly() -> None:
    now = [0.0]
    bucket = TokenBucket(RateSpec(2, 1), clock=lambda: now[0])
    for _ in range(2):
        assert bucket.wait_time() == 0
        bucket.take()
    assert bucket.wait_time() == pytest.approx(0.5)
    now[0] = 0.25
    assert bucket.wait_time() == pytest.approx(0.25)
    now[0] = 10
    assert bucket.wait_time() == 0 and bucket.level == 2
