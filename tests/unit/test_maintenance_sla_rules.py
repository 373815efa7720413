"""The SLA's maintenance rules (sla.md, Maintenance) at their edges, on the pure judge: outside
support hours on the configured calendar (16:59/17:00, 08:29/08:30, holidays, weekends), the
minimum notice (47h59m vs 48h), the emergency exception with its justification, and recurrence
(RFC 5545 RRULE) whose every occurrence is judged and whose expansion is bounded."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from incidents.maintenance import (
    MAX_OCCURRENCES,
    MaintenanceRefused,
    judge_window,
    occurrences,
    recurrence_rule,
)
from sla.calendar import SupportCalendar

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = SupportCalendar()
# A calendar configured with other support hours: the rule follows the configuration.
NINE_TO_SIX = SupportCalendar(support_start=time(9, 0), support_end=time(18, 0))
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=AMS)  # Mon 30 Nov 2026


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=AMS)


def refused(**kwargs: object) -> MaintenanceRefused:
    with pytest.raises(MaintenanceRefused) as caught:
        judge_window(**kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_window_starting_at_1700_on_a_working_day_is_accepted() -> None:
    # Thu 3 Dec 17:00 closes support; the window ends before Fri's opening.
    assert judge_window(CALENDAR, at(3, 17), at(3, 23), now=NOW) == [
        (at(3, 17).astimezone(UTC), at(3, 23).astimezone(UTC))
    ]


def test_a_window_starting_at_1659_is_refused_naming_start() -> None:
    error = refused(calendar=CALENDAR, start=at(3, 16, 59), end=at(3, 23), now=NOW)
    assert (error.field, error.message) == (
        "start",
        "maintenance must lie outside support hours: the window starts inside them "
        "(Thu 03 Dec 16:59)",
    )


def test_a_window_ending_at_0830_is_accepted_and_at_0831_refused_naming_end() -> None:
    judge_window(CALENDAR, at(3, 22), at(4, 8, 30), now=NOW)
    error = refused(calendar=CALENDAR, start=at(3, 22), end=at(4, 8, 31), now=NOW)
    assert (error.field, error.message) == (
        "end",
        "maintenance must lie outside support hours: the window runs into them "
        "(they open Fri 04 Dec 08:30)",
    )


def test_a_window_starting_at_0829_is_refused_as_it_runs_into_the_0830_opening() -> None:
    error = refused(calendar=CALENDAR, start=at(4, 8, 29), end=at(4, 8, 31), now=NOW)
    assert error.field == "end"
    judge_window(CALENDAR, at(4, 6, 0), at(4, 8, 30), now=NOW)


def test_a_window_starting_at_0830_is_refused_naming_start() -> None:
    error = refused(calendar=CALENDAR, start=at(4, 8, 30), end=at(4, 9, 0), now=NOW)
    assert error.field == "start"


def test_the_configured_support_hours_decide_the_edges() -> None:
    # Support 09:00-18:00: 08:45 is outside, 17:30 inside.
    judge_window(NINE_TO_SIX, at(4, 7, 0), at(4, 9, 0), now=NOW)
    assert refused(calendar=NINE_TO_SIX, start=at(3, 17, 30), end=at(3, 22), now=NOW).field == (
        "start"
    )
    judge_window(NINE_TO_SIX, at(3, 18), at(3, 23), now=NOW)


def test_a_whole_weekend_is_outside_support_hours() -> None:
    # Fri 4 Dec 17:00 to Mon 7 Dec 08:30.
    judge_window(CALENDAR, at(4, 17), at(7, 8, 30), now=NOW)


def test_a_holiday_during_the_day_is_outside_support_hours() -> None:
    # Christmas (Fri 25 Dec) and Boxing Day (Sat) until Monday's opening.
    judge_window(CALENDAR, at(25, 9), at(28, 8, 30), now=NOW)
    # A configured closed day too.
    closed = SupportCalendar(closed_days=[date(2026, 12, 31)])
    judge_window(closed, at(31, 10), at(31, 16), now=NOW)
    assert refused(calendar=CALENDAR, start=at(31, 10), end=at(31, 16), now=NOW).field == "start"


def test_notice_of_48h_is_enough_and_47h59m_is_refused_with_the_reason() -> None:
    now = at(1, 22)  # Tue 1 Dec 22:00
    judge_window(CALENDAR, at(3, 22), at(4, 2), now=now)
    error = refused(
        calendar=CALENDAR, start=at(3, 22), end=at(4, 2), now=now + timedelta(minutes=1)
    )
    assert (error.field, error.message) == (
        "start",
        "start: a window must be announced at least 48h before it starts; this one starts in "
        "47h 59m (an emergency is exempt, with a justification)",
    )


def test_the_minimum_notice_is_configurable() -> None:
    now = at(1, 22)
    judge_window(CALENDAR, at(2, 22), at(3, 2), now=now, min_notice=timedelta(hours=24))
    error = refused(
        calendar=CALENDAR, start=at(2, 22), end=at(3, 2), now=now, min_notice=timedelta(hours=25)
    )
    assert "at least 25h before it starts; this one starts in 24h" in error.message


def test_without_the_notice_rule_a_running_window_may_be_judged_again() -> None:
    # A change that keeps the start of a window that has begun: no notice applies, the
    # support-hours rule still does.
    now = at(3, 23)  # Thu 3 Dec 23:00, an hour into the window
    assert judge_window(CALENDAR, at(3, 22), at(4, 2), now=now, min_notice=None) == [
        (at(3, 22), at(4, 2))
    ]
    assert refused(calendar=CALENDAR, start=at(3, 22), end=at(3, 23), now=now).field == "start"
    error = refused(calendar=CALENDAR, start=at(3, 22), end=at(4, 9), now=now, min_notice=None)
    assert error.field == "end"


def test_an_emergency_with_a_justification_may_touch_support_hours_without_notice() -> None:
    now = at(1, 10)
    found = judge_window(
        CALENDAR,
        at(1, 11),
        at(1, 12),
        now=now,
        emergency=True,
        justification="security patch for CVE-2026-0001",
    )
    assert found == [(at(1, 11).astimezone(UTC), at(1, 12).astimezone(UTC))]


def test_an_emergency_without_a_justification_is_refused_naming_it() -> None:
    error = refused(
        calendar=CALENDAR, start=at(1, 11), end=at(1, 12), now=at(1, 10), emergency=True
    )
    assert (error.field, error.message) == (
        "justification",
        "justification: an emergency window needs a justification (it is shown wherever the "
        "window is)",
    )


def test_a_weekly_window_keeps_its_local_time_across_the_clock_change() -> None:
    # Each occurrence starts at 22:00 local and lasts the first one's 4 hours.
    found = occurrences(
        at(17, 22, month=10), at(18, 2, month=10), "FREQ=WEEKLY;BYDAY=SA;COUNT=3", AMS
    )
    assert [(s.astimezone(AMS).isoformat(), e.astimezone(AMS).isoformat()) for s, e in found] == [
        ("2026-10-17T22:00:00+02:00", "2026-10-18T02:00:00+02:00"),
        ("2026-10-24T22:00:00+02:00", "2026-10-25T02:00:00+02:00"),
        ("2026-10-31T22:00:00+01:00", "2026-11-01T02:00:00+01:00"),
    ]


def test_until_is_a_utc_instant_and_ends_the_series() -> None:
    found = occurrences(at(5, 22), at(6, 2), "RRULE:FREQ=WEEKLY;UNTIL=20261219T210000Z", AMS)
    assert [s.astimezone(AMS).day for s, _ in found] == [5, 12, 19]


def test_occurrences_that_overlap_are_refused() -> None:
    error = refused(
        calendar=CALENDAR,
        start=at(5, 22),
        end=at(6, 23),
        now=NOW,
        recurrence="FREQ=DAILY;COUNT=3",
    )
    assert (error.field, error.message) == (
        "recurrence",
        "recurrence: the occurrences overlap: each lasts 25h, they start 24h apart",
    )


def test_a_later_occurrence_inside_support_hours_is_refused_naming_recurrence() -> None:
    # Sat 5 Dec 07:00-09:00 is fine; daily, Mon 7 Dec 07:00-09:00 runs into the opening.
    error = refused(
        calendar=CALENDAR,
        start=at(5, 7),
        end=at(5, 9),
        now=NOW,
        recurrence="FREQ=DAILY;COUNT=3",
    )
    assert (error.field, error.message) == (
        "recurrence",
        "recurrence: the occurrence of Mon 07 Dec 2026 is refused: maintenance must lie "
        "outside support hours: the window runs into them (they open Mon 07 Dec 08:30)",
    )


def test_weeknights_recur_and_each_is_outside_support_hours() -> None:
    found = judge_window(
        CALENDAR,
        at(7, 22),
        at(8, 2),
        now=NOW,
        recurrence="FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=5",
    )
    assert [s.astimezone(AMS).day for s, _ in found] == [7, 8, 9, 10, 11]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=SECONDLY", "recurrence: FREQ must be DAILY, WEEKLY or MONTHLY"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "recurrence: BYMONTH is not supported"),
        ("FREQ=MONTHLY;BYMONTHDAY=30", "recurrence: BYMONTHDAY '30' must be within -28..28"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "recurrence: BYDAY with FREQ=DAILY needs INTERVAL=1"),
        ("FREQ=WEEKLY;BYDAY=5SA", "recurrence: BYDAY ordinals (1SA, -1SU) are for FREQ=MONTHLY"),
        ("FREQ=WEEKLY;COUNT=100000", "recurrence: COUNT must be a whole number within 1..366"),
        ("FREQ=WEEKLY;FREQ=DAILY", "recurrence: FREQ is given twice"),
        ("FREQ=WEEKLY;UNTIL=20270101", "recurrence: UNTIL must be a UTC time"),
        ("FREQ", "recurrence: 'FREQ' is not NAME=VALUE"),
        ("FREQ=WEEKLY;" * 40, "recurrence: must be at most 300 characters"),
    ],
)
def test_a_rule_that_could_cost_more_than_its_occurrences_is_refused(
    rule: str, message: str
) -> None:
    with pytest.raises(MaintenanceRefused) as caught:
        recurrence_rule(rule)
    assert caught.value.field == "recurrence"
    assert caught.value.message.startswith(message)


def test_expansion_is_capped_in_occurrences_and_horizon() -> None:
    daily = occurrences(at(5, 22), at(5, 23), "FREQ=DAILY", AMS)
    assert len(daily) == MAX_OCCURRENCES
    monthly = occurrences(at(5, 22), at(5, 23), "FREQ=MONTHLY", AMS)
    # A year ahead at most: 5 Dec 2026 .. 5 Dec 2027.
    assert len(monthly) == 13


def test_a_start_that_is_not_an_occurrence_of_the_rule_is_refused() -> None:
    with pytest.raises(MaintenanceRefused) as caught:
        occurrences(at(4, 22), at(4, 23), "FREQ=WEEKLY;BYDAY=SA", AMS)
    assert caught.value.message == (
        "recurrence: the start (Fri 04 Dec 2026 22:00) must be the rule's first occurrence"
    )
