"""The counts behind $SRV.STATS (what a real service reports is tested against nats-server in
tests/integration/runtime/test_worker_service_stats.py)."""

from __future__ import annotations

from proxmox_mcp_runtime.service_stats import EndpointCounts


def test_counts_take_requests_on_arrival_and_errors_and_time_when_they_finish() -> None:
    counts = EndpointCounts()
    counts.arrived()
    counts.arrived()
    counts.arrived()
    counts.finished_with("ok", 3_000_000)
    counts.finished_with("policy_denied", 1_000_000)
    assert (counts.requests, counts.finished, counts.errors) == (3, 2, 1)
    assert counts.processing_ns == 4_000_000
    assert counts.average_ns == 2_000_000  # over the finished ones: the running one has no time yet
    assert counts.last_error == "policy_denied"


def test_no_finished_request_averages_zero() -> None:
    counts = EndpointCounts()
    counts.arrived()
    assert counts.average_ns == 0 and counts.last_error is None

