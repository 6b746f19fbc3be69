"""Proxmox calendar events (backup job schedules): the next time one fires, and clear errors for bad ones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from proxmox_mcp_contracts.pve_calendar import CalendarEventError, next_event, next_run, parse_calendar_event

# Wednesday 2025-11-19 14:10:30 UTC
NOW = dt.datetime(2025, 11, 19, 14, 10, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(("spec", "expected"), [
    ("sat 02:00", dt.datetime(2025, 11, 22, 2, 0, tzinfo=dt.UTC)),
    ("*-*-* 21:00", dt.datetime(2025, 11, 19, 21, 0, tzinfo=dt.UTC)),
    ("mon..fri 03:30", dt.datetime(2025, 11, 20, 3, 30, tzinfo=dt.UTC)),
    ("mon..fri 14:10", dt.datetime(2025, 11, 20, 14, 10, tzinfo=dt.UTC)),  # today's 14:10 has passed
    ("sat,sun", dt.datetime(2025, 11, 22, 0, 0, tzinfo=dt.UTC)),
    ("fri..mon 23:59", dt.datetime(2025, 11, 21, 23, 59, tzinfo=dt.UTC)),  # a range across the week's end
    ("12:05", dt.datetime(2025, 11, 20, 12, 5, tzinfo=dt.UTC)),
    ("*/15", dt.datetime(2025, 11, 19, 14, 15, tzinfo=dt.UTC)),  # a bare spec is minutes
    ("30/10", dt.datetime(2025, 11, 19, 14, 30, tzinfo=dt.UTC)),
    ("*", dt.datetime(2025, 11, 19, 14, 11, tzinfo=dt.UTC)),
    ("mon..fri 8..17,22:0/15", dt.datetime(2025, 11, 19, 14, 15, tzinfo=dt.UTC)),
    ("12/2:5", dt.datetime(2025, 11, 19, 16, 5, tzinfo=dt.UTC)),
    ("*-05", dt.datetime(2025, 12, 5, 0, 0, tzinfo=dt.UTC)),
    ("Sat *-1..7 15:00", dt.datetime(2025, 12, 6, 15, 0, tzinfo=dt.UTC)),  # first Saturday of a month
    ("2026-10-21", dt.datetime(2026, 10, 21, 0, 0, tzinfo=dt.UTC)),
    ("14:10:45", dt.datetime(2025, 11, 19, 14, 10, 45, tzinfo=dt.UTC)),
    ("daily", dt.datetime(2025, 11, 20, 0, 0, tzinfo=dt.UTC)),
    ("weekly", dt.datetime(2025, 11, 24, 0, 0, tzinfo=dt.UTC)),
    ("monthly", dt.datetime(2025, 12, 1, 0, 0, tzinfo=dt.UTC)),
    ("hourly", dt.datetime(2025, 11, 19, 15, 0, tzinfo=dt.UTC)),
    ("quarterly", dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)),
    ("*-02-29", dt.datetime(2028, 2, 29, 0, 0, tzinfo=dt.UTC)),
])
def test_the_next_event_is_the_first_matching_time_after_now(spec: str, expected: dt.datetime) -> None:
    assert next_event(spec, NOW) == expected


def test_an_event_at_exactly_now_fires_next_time_not_now() -> None:
    at = dt.datetime(2025, 11, 19, 21, 0, tzinfo=dt.UTC)
    assert next_event("21:00", at) == dt.datetime(2025, 11, 20, 21, 0, tzinfo=dt.UTC)


def test_a_date_in_the_past_never_fires_again() -> None:
    assert next_event("2015-10-21", NOW) is None


def test_schedules_run_in_the_nodes_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    fired = next_run("sat 02:00", NOW.timestamp(), berlin)
    assert fired == int(dt.datetime(2025, 11, 22, 2, 0, tzinfo=berlin).timestamp())
    assert dt.datetime.fromtimestamp(fired or 0, dt.UTC).hour == 1  # 02:00 CET is 01:00 UTC


@pytest.mark.parametrize(("spec", "complaint"), [
    ("", "empty"),
    ("funday 02:00", "unknown weekday"),
    ("25:00", "hour 25 is outside 0..23"),
    ("02:61", "minute 61"),
    ("*-13-01", "month 13"),
    ("10..5", "ends before it starts"),
    ("02:00 sat", "weekdays 'sat' must come first"),
    ("1-2-3-4", "MONTH-DAY or YEAR-MONTH-DAY"),
    ("1:2:3:4", "HOUR:MINUTE"),
    ("02:00 03:00", "more than one time"),
    ("x" * 200, "longer than"),
])
def test_a_bad_schedule_is_refused_naming_the_part(spec: str, complaint: str) -> None:
    with pytest.raises(CalendarEventError, match=complaint):
        parse_calendar_event(spec)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        next_event("daily", dt.datetime(2025, 1, 1))
