"""W3C traceparent handling: what counts as a valid parent, and that our span keeps the caller's trace."""

from __future__ import annotations

import re

import pytest
from proxmox_mcp_contracts.trace import child_traceparent, trace_id_of, valid_traceparent

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value", [
    PARENT, PARENT.upper(), f" {PARENT} ", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
])
def test_well_formed_traceparents_are_valid_parents(value: str) -> None:
    assert valid_traceparent(value)


@pytest.mark.parametrize("value", [
    None, 17, "", "garbage", PARENT[:-1],
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   # all-zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   # version ff is invalid
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
])
def test_malformed_or_all_zero_traceparents_are_not_valid_parents(value: object) -> None:
    assert not valid_traceparent(value)


def test_a_child_keeps_the_trace_and_gets_its_own_span() -> None:
    child = child_traceparent(PARENT)
    assert valid_traceparent(child)
    assert trace_id_of(child) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.split("-")[2] != PARENT.split("-")[2]


@pytest.mark.parametrize("parent", [None, "garbage"])
def test_without_a_valid_parent_a_new_trace_starts(parent: str | None) -> None:
    first, second = child_traceparent(parent), child_traceparent(parent)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", first)
    assert trace_id_of(first) != trace_id_of(second)
