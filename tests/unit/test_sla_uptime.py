"""Uptime per day in support hours, maintenance excluded, against hand-computed hour rollups.

Tue 1 Dec 2026 in Amsterdam (UTC+1): support 08:30-17:00 local is 07:30-16:00 UTC, so the UTC
hours 07 (30 minutes of it), 08 to 15 (60 each): 510 minutes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from sla.calendar import SupportCalendar
from sla.uptime import DayUptime, HourCount, daily_uptime, day_uptime, total_share

CALENDAR = SupportCalendar()
TUE = date(2026, 12, 1)
M = timedelta(minutes=1)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


HOURS = {
    utc(TUE, 6): HourCount(10, 10),  # 07:00 local: before the opening, not counted
    utc(TUE, 7): HourCount(10, 0),  # 30 minutes of support time, up
    utc(TUE, 8): HourCount(10, 6),  # more than half failed: down
    utc(TUE, 9): HourCount(10, 5),  # exactly half failed: up
    # 10 and 11: no results, no data
    utc(TUE, 12): HourCount(10, 10),  # down, but all of it under maintenance
    utc(TUE, 13): HourCount(4, 0),  # up, its first 30 minutes under maintenance
    utc(TUE, 14): HourCount(1, 0),
    utc(TUE, 15): HourCount(6, 1),
    utc(TUE, 16): HourCount(10, 10),  # 17:00 local: after the closing, not counted
}
MAINTENANCE = [(utc(TUE, 12), utc(TUE, 13, 30))]


def test_a_working_day_counts_support_minutes_of_hours_with_data_outside_maintenance() -> None:
    day = day_uptime(CALENDAR, TUE, HOURS, MAINTENANCE)
    assert day.support == 510 * M
    assert day.maintenance == 90 * M
    assert day.counted == (30 + 60 + 60 + 30 + 60 + 60) * M
    assert day.up == (30 + 60 + 30 + 60 + 60) * M
    assert day.share == Fraction(240, 300)
    assert day.state == "down"


def test_the_weekend_and_a_holiday_have_no_support_hours_whatever_the_probes_saw() -> None:
    saturday = date(2026, 12, 5)
    christmas = date(2026, 12, 25)
    hours = {utc(saturday, h): HourCount(10, 10) for h in range(24)}
    assert day_uptime(CALENDAR, saturday, hours) == DayUptime(saturday, closed="weekend")
    assert day_uptime(CALENDAR, saturday, hours).state == "closed"
    assert day_uptime(CALENDAR, christmas, {}).state == "closed"
    assert day_uptime(CALENDAR, christmas, {}).closed == "Christmas Day"


def test_a_day_all_under_maintenance_or_without_data_counts_nothing() -> None:
    wed, thu = date(2026, 12, 2), date(2026, 12, 3)
    hours = {utc(wed, h): HourCount(5, 5) for h in range(24)}
    window = [(utc(wed, 7), utc(wed, 16))]
    maintained = day_uptime(CALENDAR, wed, hours, window)
    assert (maintained.counted, maintained.share, maintained.state) == (
        timedelta(0), None, "maintenance",
    )  # fmt: skip
    assert day_uptime(CALENDAR, thu, {}).state == "nodata"


def test_overlapping_windows_take_their_union_once() -> None:
    hours = {utc(TUE, 12): HourCount(1, 0)}
    windows = [(utc(TUE, 12), utc(TUE, 12, 40)), (utc(TUE, 12, 20), utc(TUE, 12, 50))]
    day = day_uptime(CALENDAR, TUE, hours, windows)
    assert day.maintenance == 50 * M
    assert (day.counted, day.up) == (10 * M, 10 * M)


def test_the_total_is_the_up_time_over_the_counted_time_of_all_days() -> None:
    days = daily_uptime(CALENDAR, [TUE, date(2026, 12, 5), date(2026, 12, 3)], HOURS, MAINTENANCE)
    assert total_share(days) == Fraction(4, 5)
    assert total_share([DayUptime(TUE)]) is None
    full = day_uptime(CALENDAR, TUE, {utc(TUE, h): HourCount(3, 0) for h in range(7, 16)})
    assert (full.share, full.state) == (1, "up")
    minor = DayUptime(TUE, support=510 * M, counted=1000 * M, up=995 * M)
    assert minor.state == "minor"
