"""The support calendar: working days, holidays, closed days, DST and support-time arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sla.calendar import CONFIGURED_CLOSED, WEEKEND, SupportCalendar
from sla.deadlines import compute_deadlines
from sla.priority import Priority
from sla.targets import SlaPolicy, default_targets

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = SupportCalendar()
POLICY = SlaPolicy.default()


def ams(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def local(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(AMS).isoformat()


def policy_with(**calendar_options: object) -> SlaPolicy:
    return SlaPolicy(calendar=SupportCalendar(**calendar_options), targets=default_targets())  # type: ignore[arg-type]


# --- the holidays package's NL names for 2026 (removed_holidays matches these) ---------------


def test_nl_holidays_of_2026_are_the_closed_days_named_in_english() -> None:
    closed = CALENDAR.closed_days_between(date(2026, 1, 1), date(2026, 12, 31))
    holidays = [(day.isoformat(), reason) for day, reason in closed if reason != WEEKEND]
    assert holidays == [
        ("2026-01-01", "New Year's Day"),
        ("2026-04-03", "Good Friday"),
        ("2026-04-05", "Easter Sunday"),
        ("2026-04-06", "Easter Monday"),
        ("2026-04-27", "King's Day"),
        ("2026-05-14", "Ascension Day"),
        ("2026-05-24", "Pentecost"),
        ("2026-05-25", "Pentecost Monday"),
        ("2026-12-25", "Christmas Day"),
        ("2026-12-26", "Second Day of Christmas"),
    ]


def test_liberation_day_closes_only_in_a_lustrum_year() -> None:
    assert CALENDAR.closure_reason(date(2025, 5, 5)) == "Liberation Day"
    assert CALENDAR.is_working_day(date(2026, 5, 5)) is True


# --- holidays and deadlines -------------------------------------------------------------------


def test_p1_reported_thursday_before_good_friday_is_due_tuesday_after_easter_monday() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2026-04-02T15:00"))
    assert local(due.response_due) == "2026-04-07T10:30:00+02:00"


def test_kings_day_on_a_sunday_moves_to_saturday() -> None:
    assert CALENDAR.closure_reason(date(2025, 4, 26)) == "King's Day"
    assert CALENDAR.closure_reason(date(2025, 4, 27)) == WEEKEND
    assert CALENDAR.is_working_day(date(2025, 4, 25)) is True
    assert CALENDAR.is_working_day(date(2025, 4, 28)) is True


def test_p1_reported_friday_before_saturday_kings_day_is_due_monday() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2025-04-25T15:00"))
    assert local(due.response_due) == "2025-04-28T10:30:00+02:00"


def test_p1_reported_friday_before_kings_day_monday_is_due_tuesday() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2026-04-24T15:00"))
    assert local(due.response_due) == "2026-04-28T10:30:00+02:00"


def test_p2_reported_day_before_ascension_skips_ascension_thursday() -> None:
    due = compute_deadlines(POLICY, Priority.HIGH, ams("2026-05-13T14:00"))
    assert local(due.response_due) == "2026-05-15T13:30:00+02:00"
    assert local(due.repair_due) == "2026-05-18T17:00:00+02:00"


def test_p1_reported_friday_before_whit_monday_is_due_tuesday() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2026-05-22T15:00"))
    assert local(due.response_due) == "2026-05-26T10:30:00+02:00"
    assert CALENDAR.closure_reason(date(2026, 5, 25)) == "Pentecost Monday"


def test_p3_reported_christmas_eve_morning_is_due_monday_same_time() -> None:
    due = compute_deadlines(POLICY, Priority.NORMAL, ams("2026-12-24T10:00"))
    assert local(due.response_due) == "2026-12-28T10:00:00+01:00"


def test_p2_reported_on_new_years_eve_is_due_after_new_years_day() -> None:
    due = compute_deadlines(POLICY, Priority.HIGH, ams("2026-12-31T12:00"))
    assert local(due.response_due) == "2027-01-04T11:30:00+01:00"
    assert local(due.repair_due) == "2027-01-05T17:00:00+01:00"


def test_p1_reported_before_spring_dst_change_gets_four_support_hours() -> None:
    reported = ams("2026-03-27T15:00")  # CET; clocks go forward on Sunday 2026-03-29
    due = compute_deadlines(POLICY, Priority.CRITICAL, reported)
    assert local(due.response_due) == "2026-03-30T10:30:00+02:00"
    assert due.response_due == datetime(2026, 3, 30, 8, 30, tzinfo=UTC)
    assert CALENDAR.support_between(reported, due.response_due) == timedelta(hours=4)


def test_p1_reported_before_autumn_dst_change_gets_four_support_hours() -> None:
    reported = ams("2026-10-23T15:30")  # CEST; clocks go back on Sunday 2026-10-25
    due = compute_deadlines(POLICY, Priority.CRITICAL, reported)
    assert local(due.response_due) == "2026-10-26T11:00:00+01:00"
    assert due.response_due == datetime(2026, 10, 26, 10, 0, tzinfo=UTC)
    assert CALENDAR.support_between(reported, due.response_due) == timedelta(hours=4)


def test_p3_reported_in_the_repeated_hour_of_the_autumn_change_is_due_monday_closing() -> None:
    repeated = datetime(2026, 10, 25, 2, 30, tzinfo=AMS, fold=1)
    due = compute_deadlines(POLICY, Priority.NORMAL, repeated)
    assert local(due.response_due) == "2026-10-26T17:00:00+01:00"


def test_a_working_day_holds_eight_and_a_half_support_hours_on_both_sides_of_dst() -> None:
    for day in (date(2026, 3, 27), date(2026, 3, 30), date(2026, 10, 23), date(2026, 10, 26)):
        assert CALENDAR.support_between(CALENDAR.opening(day), CALENDAR.closing(day)) == timedelta(
            hours=8, minutes=30
        )


def test_configured_closed_day_on_new_years_eve_pushes_deadlines_into_january() -> None:
    policy = policy_with(closed_days=[date(2026, 12, 31)])
    due = compute_deadlines(policy, Priority.HIGH, ams("2026-12-30T14:00"))
    assert local(due.response_due) == "2027-01-04T13:30:00+01:00"
    assert local(due.repair_due) == "2027-01-05T17:00:00+01:00"
    assert policy.calendar.closure_reason(date(2026, 12, 31)) == CONFIGURED_CLOSED


def test_without_the_closed_day_new_years_eve_is_a_working_day() -> None:
    due = compute_deadlines(POLICY, Priority.HIGH, ams("2026-12-30T14:00"))
    assert local(due.response_due) == "2026-12-31T13:30:00+01:00"
    assert local(due.repair_due) == "2027-01-04T17:00:00+01:00"


def test_removed_good_friday_is_a_working_day() -> None:
    policy = policy_with(removed_holidays=["Good Friday"])
    assert policy.calendar.is_working_day(date(2026, 4, 3)) is True
    due = compute_deadlines(policy, Priority.CRITICAL, ams("2026-04-02T15:00"))
    assert local(due.response_due) == "2026-04-03T10:30:00+02:00"


def test_a_holiday_can_be_removed_by_its_dutch_name_in_any_case() -> None:
    calendar = SupportCalendar(removed_holidays=["goede VRIJDAG"])
    assert calendar.is_working_day(date(2026, 4, 3)) is True
    assert calendar.is_working_day(date(2026, 4, 6)) is False


# --- support-time arithmetic ------------------------------------------------------------------


def test_a_deadline_landing_exactly_at_closing_is_1700_not_next_opening() -> None:
    due = CALENDAR.add_support(ams("2026-12-01T13:00"), timedelta(hours=4))
    assert local(due) == "2026-12-01T17:00:00+01:00"


def test_one_working_day_from_opening_is_that_days_closing() -> None:
    due = CALENDAR.add_support(ams("2026-12-07T08:30"), timedelta(hours=8, minutes=30))
    assert local(due) == "2026-12-07T17:00:00+01:00"


def test_add_support_answers_in_utc() -> None:
    due = CALENDAR.add_support(ams("2026-12-01T09:00"), timedelta(hours=1))
    assert due.tzinfo is UTC
    assert due == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_add_support_starting_after_closing_counts_from_next_opening() -> None:
    due = CALENDAR.add_support(ams("2026-12-01T17:00"), timedelta(minutes=30))
    assert local(due) == "2026-12-02T09:00:00+01:00"


def test_add_zero_support_inside_hours_is_the_same_instant() -> None:
    at = ams("2026-12-01T10:15:30")
    assert CALENDAR.add_support(at, timedelta(0)) == at


def test_add_zero_support_outside_hours_is_the_next_opening() -> None:
    assert local(CALENDAR.add_support(ams("2026-12-05T11:00"), timedelta(0))) == (
        "2026-12-07T08:30:00+01:00"
    )


def test_negative_support_time_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CALENDAR.add_support(ams("2026-12-01T10:00"), timedelta(minutes=-1))


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        CALENDAR.add_support(datetime(2026, 12, 1, 10), timedelta(hours=1))


def test_support_between_spans_weekend_and_christmas() -> None:
    between = CALENDAR.support_between(ams("2026-12-24T16:00"), ams("2026-12-28T15:30"))
    assert between == timedelta(hours=8)


def test_support_between_counts_a_month_of_working_days() -> None:
    # December 2026: 23 weekdays minus Christmas Day (Friday) = 22 working days.
    between = CALENDAR.support_between(ams("2026-12-01T00:00"), ams("2027-01-01T00:00"))
    assert between == 22 * timedelta(hours=8, minutes=30)


def test_support_between_reversed_interval_is_zero() -> None:
    assert CALENDAR.support_between(ams("2026-12-02T10:00"), ams("2026-12-01T10:00")) == (
        timedelta(0)
    )


def test_is_support_time_includes_opening_and_excludes_closing() -> None:
    assert CALENDAR.is_support_time(ams("2026-12-01T08:30")) is True
    assert CALENDAR.is_support_time(ams("2026-12-01T08:29:59")) is False
    assert CALENDAR.is_support_time(ams("2026-12-01T16:59:59")) is True
    assert CALENDAR.is_support_time(ams("2026-12-01T17:00")) is False
    assert CALENDAR.is_support_time(ams("2026-12-05T10:00")) is False


def test_next_opening_inside_support_hours_is_the_instant_itself() -> None:
    at = ams("2026-12-01T10:00")
    assert CALENDAR.next_opening(at) == at


def test_next_opening_after_friday_closing_before_christmas_is_monday() -> None:
    assert local(CALENDAR.next_opening(ams("2026-12-24T17:00"))) == "2026-12-28T08:30:00+01:00"


def test_next_opening_early_morning_is_same_day_opening() -> None:
    assert local(CALENDAR.next_opening(ams("2026-12-01T06:00"))) == "2026-12-01T08:30:00+01:00"


def test_repair_clock_starts_on_first_working_day_after_the_report_day() -> None:
    assert local(CALENDAR.repair_clock_start(ams("2026-12-24T16:00"))) == (
        "2026-12-28T08:30:00+01:00"
    )
    assert local(CALENDAR.repair_clock_start(ams("2026-12-01T07:00"))) == (
        "2026-12-02T08:30:00+01:00"
    )


def test_p2_reported_on_saturday_counts_repair_days_from_monday() -> None:
    # The footnote counts from the day after the report's day, even outside support hours.
    due = compute_deadlines(POLICY, Priority.HIGH, ams("2026-12-05T11:00"))
    assert local(due.repair_due) == "2026-12-08T17:00:00+01:00"


def test_working_days_deadline_of_zero_days_is_refused() -> None:
    with pytest.raises(ValueError):
        CALENDAR.working_days_deadline(ams("2026-12-01T10:00"), 0)


def test_closed_days_between_lists_weekend_and_holidays_with_reasons() -> None:
    policy = policy_with(closed_days=[date(2026, 12, 31)])
    assert policy.calendar.closed_days_between(date(2026, 12, 24), date(2027, 1, 3)) == [
        (date(2026, 12, 25), "Christmas Day"),
        (date(2026, 12, 26), "Second Day of Christmas"),
        (date(2026, 12, 27), WEEKEND),
        (date(2026, 12, 31), CONFIGURED_CLOSED),
        (date(2027, 1, 1), "New Year's Day"),
        (date(2027, 1, 2), WEEKEND),
        (date(2027, 1, 3), WEEKEND),
    ]


# --- construction -----------------------------------------------------------------------------


def test_calendar_is_immutable() -> None:
    with pytest.raises(AttributeError):
        CALENDAR.timezone = "UTC"


def test_other_support_hours_change_the_day_length() -> None:
    calendar = SupportCalendar(support_start=time(9, 0), support_end=time(17, 0))
    assert calendar.support_day == timedelta(hours=8)
    due = calendar.add_support(ams("2026-12-01T16:00"), timedelta(hours=2))
    assert local(due) == "2026-12-02T10:00:00+01:00"


def test_support_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="support_end"):
        SupportCalendar(support_start=time(17, 0), support_end=time(8, 30))


def test_unknown_holiday_country_is_refused() -> None:
    with pytest.raises(ValueError, match="XX"):
        SupportCalendar(country="XX")
