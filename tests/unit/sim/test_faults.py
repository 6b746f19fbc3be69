"""Fault rules as the command line and the control endpoint give them."""

from __future__ import annotations

import pytest
from proxmox_mcp_pve_sim.faults import FaultRule, FaultRuleError, Faults, parse_cli_rule


def test_fault_rules_parse_from_flags_and_json() -> None:
    rule = parse_cli_rule("^/nodes/[^/]+/qemu$=250", "latency_ms")
    assert (rule.path.pattern, rule.latency_ms) == ("^/nodes/[^/]+/qemu$", 250)
    assert parse_cli_rule("a=b=0.5", "error_rate").path.pattern == "a=b"
    for bad, field in (("noequals", "latency_ms"), ("^x$=abc", "latency_ms"), ("^x$=1.5", "error_rate")):
        with pytest.raises(FaultRuleError):
            parse_cli_rule(bad, field)
    faults = Faults(
        [
            FaultRule.from_dict(
                {"path": "^/a", "method": "get", "latency_ms": 10, "error_rate": 1, "status": 503, "message": "down"}
            )
        ]
    )
    delay, error = faults.plan("GET", "/a/b")
    assert delay == 0.01 and error is not None and (error.status, error.message) == (503, "down")
    assert faults.plan("POST", "/a/b") == (0.0, None)
    assert faults.plan("GET", "/b") == (0.0, None)
