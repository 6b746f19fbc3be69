"""Proxmox calendar events (`pve-calendar-event`, the subset of systemd calendar events that backup job schedules
use) and the next time one fires.

    next_event("mon..fri 03:30", after)     # the next working day at 03:30
    next_event("sat 02:00", after)          # the next Saturday at 02:00
    next_event("*-*-* 21:00", after)        # every day at 21:00
    next_event("*/15", after)               # every 15 minutes (a spec without ':' is minutes)

Grammar, as proxmox-time reads it: `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND] | MINUTE]`, or one of the
words minutely, hourly, daily, weekly, monthly, yearly/annually, quarterly, semiannually. Each number field is
`*`, or a comma list of `N`, `A..B`, each optionally `/STEP` (`*/STEP` starts at the field's lowest value).
Weekdays are mon..sun (or full names), as lists and `A..B` ranges. Times are in the node's local time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SPECIAL = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
    "semi-annually": "*-01,07-01 00:00:00",
}
SEARCH_DAYS = 366 * 8
"""How far ahead a next event is looked for (covers leap days and rare weekday/date combinations)."""
MAX_SPEC_LENGTH = 128


class CalendarEventError(ValueError):
    """The schedule is not a calendar event this module understands; the message says which part and why."""


@dataclass(frozen=True)
class CalendarEvent:
    weekdays: frozenset[int]
    """0 = Monday, as datetime.weekday()."""
    years: frozenset[int] | None
    """None: every year."""
    months: frozenset[int]
    days: frozenset[int]
    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    seconds: tuple[int, ...]

    def matches_day(self, day: dt.date) -> bool:
        return (
            day.weekday() in self.weekdays
            and day.month in self.months
            and day.day in self.days
            and (self.years is None or day.year in self.years)
        )


def _number(text: str, field: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise CalendarEventError(f"{field} {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CalendarEventError(f"{field} {value} is outside {low}..{high}")
    return value


def _field(text: str, field: str, low: int, high: int) -> frozenset[int]:
    """`*`, `N`, `A..B`, each with an optional `/STEP`, comma-separated."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CalendarEventError(f"empty {field} in {text!r}")
        base, _, step_text = item.partition("/")
        step = _number(step_text, f"{field} step", 1, high) if step_text else 0
        if base == "*":
            start, end = low, high
        elif ".." in base:
            first, _, last = base.partition("..")
            start, end = _number(first, field, low, high), _number(last, field, low, high)
            if end < start:
                raise CalendarEventError(f"{field} range {base!r} ends before it starts")
        else:
            start = _number(base, field, low, high)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return frozenset(values)


def _weekday(text: str) -> int:
    name = text.lower()
    if name in WEEKDAYS:
        return WEEKDAYS.index(name)
    if name in _FULL_WEEKDAYS:
        return _FULL_WEEKDAYS.index(name)
    raise CalendarEventError(f"unknown weekday {text!r} (use mon, tue, wed, thu, fri, sat, sun)")


def _weekdays(text: str) -> frozenset[int]:
    days: set[int] = set()
    for item in text.split(","):
        if ".." in item:
            first, _, last = item.partition("..")
            start, end = _weekday(first), _weekday(last)
            span = (end - start) % 7
            days.update((start + offset) % 7 for offset in range(span + 1))
        else:
            days.add(_weekday(item))
    return frozenset(days)


def _date(text: str) -> tuple[frozenset[int] | None, frozenset[int], frozenset[int]]:
    parts = text.split("-")
    if len(parts) == 2:
        year_text, (month_text, day_text) = None, parts
    elif len(parts) == 3:
        year_text, month_text, day_text = parts
    else:
        raise CalendarEventError(f"date {text!r} must be MONTH-DAY or YEAR-MONTH-DAY")
    years = None if year_text in (None, "*") else _field(year_text, "year", 1970, 2999)
    return years, _field(month_text, "month", 1, 12), _field(day_text, "day", 1, 31)


def _time(text: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    parts = text.split(":")
    if len(parts) == 1:  # a bare spec is the minute of every hour
        hours, minutes, seconds = "*", parts[0], "0"
    elif len(parts) == 2:
        hours, minutes, seconds = parts[0], parts[1], "0"
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        raise CalendarEventError(f"time {text!r} must be HOUR:MINUTE[:SECOND] or MINUTE")
    return (
        tuple(sorted(_field(hours, "hour", 0, 23))),
        tuple(sorted(_field(minutes, "minute", 0, 59))),
        tuple(sorted(_field(seconds, "second", 0, 59))),
    )


def parse_calendar_event(spec: str) -> CalendarEvent:
    text = " ".join(spec.split()).lower()
    if not text:
        raise CalendarEventError("the schedule is empty")
    if len(text) > MAX_SPEC_LENGTH:
        raise CalendarEventError(f"the schedule is longer than {MAX_SPEC_LENGTH} characters")
    text = SPECIAL.get(text, text)
    tokens = text.split(" ")
    weekdays: frozenset[int] = frozenset(range(7))
    years: frozenset[int] | None = None
    months, days = frozenset(range(1, 13)), frozenset(range(1, 32))
    hours: tuple[int, ...] = (0,)
    minutes: tuple[int, ...] = (0,)
    seconds: tuple[int, ...] = (0,)
    seen_weekdays = seen_date = seen_time = False
    for token in tokens:
        if token[0].isalpha():
            if seen_weekdays or seen_date or seen_time:
                raise CalendarEventError(f"weekdays {token!r} must come first")
            weekdays, seen_weekdays = _weekdays(token), True
        elif "-" in token:
            if seen_date or seen_time:
                raise CalendarEventError(f"date {token!r} must come before the time, once")
            (years, months, days), seen_date = _date(token), True
        else:
            if seen_time:
                raise CalendarEventError(f"more than one time in {spec!r}")
            (hours, minutes, seconds), seen_time = _time(token), True
    return CalendarEvent(weekdays, years, months, days, hours, minutes, seconds)


def next_event(spec: str | CalendarEvent, after: dt.datetime) -> dt.datetime | None:
    """The first time strictly after `after` (an aware datetime, compared in its own time zone) at which the
    event fires; None when it never fires again within SEARCH_DAYS (e.g. a date in the past)."""
    event = parse_calendar_event(spec) if isinstance(spec, str) else spec
    if after.tzinfo is None:
        raise ValueError("after must carry a time zone")
    start = after.replace(microsecond=0) + dt.timedelta(seconds=1)
    if event.years is not None and max(event.years) < start.year:
        return None
    day = start.date()
    for _ in range(SEARCH_DAYS):
        if event.matches_day(day):
            for hour in event.hours:
                for minute in event.minutes:
                    for second in event.seconds:
                        candidate = dt.datetime(day.year, day.month, day.day, hour, minute, second,
                                                tzinfo=start.tzinfo)
                        if candidate >= start:
                            return candidate
        day += dt.timedelta(days=1)
    return None


def next_run(spec: str, after_epoch: float, tz: dt.tzinfo = dt.UTC) -> int | None:
    """next_event as Unix seconds, for an epoch time and the node's time zone."""
    found = next_event(spec, dt.datetime.fromtimestamp(after_epoch, tz))
    return int(found.timestamp()) if found is not None else None
