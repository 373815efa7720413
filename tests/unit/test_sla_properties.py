"""Properties of support-time arithmetic over random instants across 2026-2030."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sla.calendar import SupportCalendar
from sla.deadlines import compute_deadlines
from sla.priority import Priority
from sla.targets import SlaPolicy

POLICY = SlaPolicy.default()
CALENDAR: SupportCalendar = POLICY.calendar

instants = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2030, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
amounts = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=200))
positive = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(hours=200))
priorities = st.sampled_from(list(Priority))
examples = settings(max_examples=200, deadline=None)


def inside_support_or_at_closing(at: datetime) -> bool:
    local = CALENDAR.local(at)
    at_closing = CALENDAR.is_working_day(local.date()) and local.time() == time(17, 0)
    return CALENDAR.is_support_time(at) or at_closing


@examples
@given(instants, priorities)
def test_every_deadline_falls_inside_support_hours_or_at_closing(at: datetime, p: Priority) -> None:
    due = compute_deadlines(POLICY, p, at)
    for deadline in (due.response_due, due.update_due, due.repair_due):
        if deadline is not None:
            assert deadline > at
            assert inside_support_or_at_closing(deadline)


@examples
@given(instants, positive)
def test_add_support_lands_inside_support_hours_or_at_closing(at: datetime, d: timedelta) -> None:
    assert inside_support_or_at_closing(CALENDAR.add_support(at, d))


@examples
@given(instants, amounts, amounts)
def test_add_support_is_monotonic_in_the_amount(at: datetime, a: timedelta, b: timedelta) -> None:
    low, high = sorted((a, b))
    assert CALENDAR.add_support(at, low) <= CALENDAR.add_support(at, high)


@examples
@given(instants, instants, amounts)
def test_add_support_is_monotonic_in_the_start(s: datetime, t: datetime, d: timedelta) -> None:
    early, late = sorted((s, t))
    assert CALENDAR.add_support(early, d) <= CALENDAR.add_support(late, d)


@examples
@given(instants, amounts, amounts)
@example(datetime(2026, 12, 1, 12, tzinfo=UTC), timedelta(hours=4), timedelta(0))
@example(datetime(2026, 12, 1, 12, tzinfo=UTC), timedelta(hours=4), timedelta(minutes=30))
@example(datetime(2026, 12, 24, 16, tzinfo=UTC), timedelta(0), timedelta(hours=8, minutes=30))
def test_add_support_is_additive(at: datetime, a: timedelta, b: timedelta) -> None:
    assert CALENDAR.add_support(CALENDAR.add_support(at, a), b) == CALENDAR.add_support(at, a + b)


@examples
@given(instants, amounts)
@example(datetime(2026, 12, 1, 12, tzinfo=UTC), timedelta(hours=4))
@example(datetime(2026, 12, 4, 16, tzinfo=UTC), timedelta(hours=8, minutes=30))
def test_support_between_undoes_add_support(at: datetime, d: timedelta) -> None:
    assert CALENDAR.support_between(at, CALENDAR.add_support(at, d)) == d


@examples
@given(instants, instants)
def test_support_between_is_never_more_than_wall_time(s: datetime, t: datetime) -> None:
    early, late = sorted((s, t))
    assert timedelta(0) <= CALENDAR.support_between(early, late) <= late - early


@examples
@given(instants, priorities)
def test_report_outside_support_hours_is_due_as_if_reported_at_next_opening(
    at: datetime, p: Priority
) -> None:
    assume(not CALENDAR.is_support_time(at))
    opening = CALENDAR.next_opening(at)
    outside, at_opening = compute_deadlines(POLICY, p, at), compute_deadlines(POLICY, p, opening)
    assert outside.response_due == at_opening.response_due
    assert outside.update_due == at_opening.update_due
    # Repair counts working days from the day after the report's own day (the SLA footnote), so
    # it matches the next opening's only when both are on the same local day.
    if CALENDAR.local(at).date() == CALENDAR.local(opening).date():
        assert outside.repair_due == at_opening.repair_due


@examples
@given(instants)
def test_next_opening_is_inside_support_hours_and_not_before_the_instant(at: datetime) -> None:
    opening = CALENDAR.next_opening(at)
    assert opening >= at
    assert CALENDAR.is_support_time(opening)
    assert CALENDAR.support_between(at, opening) == timedelta(0)
