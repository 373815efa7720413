"""The one maintenance module: what a window covers, and that it lies outside support hours on
the SLA calendar (holidays and closed days are not support hours)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from classifier.observation import Service
from incidents.maintenance import InsideSupportHours, MaintenanceWindow, check_outside_support_hours
from incidents.model import MaintenanceWindow as ModelWindow
from sla.calendar import SupportCalendar

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = SupportCalendar()


def test_the_engine_model_re_exports_the_one_window() -> None:
    assert ModelWindow is MaintenanceWindow


def test_christmas_day_during_the_day_is_outside_support_hours() -> None:
    # Friday 25 Dec 2026 is a holiday; support opens again Monday 28 Dec 08:30.
    check_outside_support_hours(
        CALENDAR,
        datetime(2026, 12, 25, 9, 0, tzinfo=AMS),
        datetime(2026, 12, 28, 8, 30, tzinfo=AMS),
    )


def test_a_configured_closed_day_is_outside_support_hours() -> None:
    closed = SupportCalendar(closed_days=[date(2026, 12, 1)])
    check_outside_support_hours(
        closed, datetime(2026, 12, 1, 10, 0, tzinfo=AMS), datetime(2026, 12, 1, 16, 0, tzinfo=AMS)
    )


def test_a_window_running_past_the_holidays_into_monday_names_end_and_the_opening() -> None:
    with pytest.raises(InsideSupportHours) as caught:
        check_outside_support_hours(
            CALENDAR,
            datetime(2026, 12, 25, 9, 0, tzinfo=AMS),
            datetime(2026, 12, 28, 8, 31, tzinfo=AMS),
        )
    assert (caught.value.field, caught.value.message) == (
        "end",
        "maintenance must lie outside support hours: the window runs into them "
        "(they open Mon 28 Dec 08:30)",
    )


def test_a_window_starting_on_a_working_afternoon_names_start() -> None:
    with pytest.raises(InsideSupportHours) as caught:
        check_outside_support_hours(
            CALENDAR,
            datetime(2026, 12, 1, 16, 0, tzinfo=AMS),
            datetime(2026, 12, 1, 18, 0, tzinfo=AMS),
        )
    assert (caught.value.field, caught.value.message) == (
        "start",
        "maintenance must lie outside support hours: the window starts inside them "
        "(Tue 01 Dec 16:00)",
    )


def test_empty_filters_cover_every_place_and_time_bounds_are_half_open() -> None:
    start, end = datetime(2026, 12, 1, 21, 0, tzinfo=AMS), datetime(2026, 12, 1, 23, 0, tzinfo=AMS)
    everything = MaintenanceWindow(start, end)
    crm_at_acme = MaintenanceWindow(start, end, frozenset({Service.CRM}), frozenset({"acme"}))
    assert everything.covers_place(Service.CLICK2DIAL, "globex", "globex-utr")
    assert crm_at_acme.covers_place(Service.CRM, "acme", "acme-ams")
    assert not crm_at_acme.covers_place(Service.CLICK2DIAL, "acme", "acme-ams")
    assert not crm_at_acme.covers_place(Service.CRM, "globex", "globex-utr")
    assert (everything.active_at(start), everything.active_at(end)) == (True, False)
