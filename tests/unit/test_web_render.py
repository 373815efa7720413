"""The status banner, number and time formatting, and local times typed into forms."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ctiwatch.web.inputs import parse_local_time
from ctiwatch.web.render import ago, duration, ms, overall, pct
from ctiwatch.web.service import (
    CustomerStatus,
    IncidentSummary,
    LocationStatus,
    ServiceError,
    ServiceState,
    ServiceTile,
    StatusView,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def view(*states: ServiceState, priorities: tuple[int, ...] = ()) -> StatusView:
    return views(states, priorities=priorities)


def views(*customers: tuple[ServiceState, ...], priorities: tuple[int, ...] = ()) -> StatusView:
    """One customer per tuple of tile states, each at one location."""
    found = tuple(
        CustomerStatus(
            f"c{n}",
            f"C{n}",
            (
                LocationStatus(
                    "ams",
                    "Amsterdam",
                    tuple(ServiceTile("crm", s, NOW, None, 0, None) for s in states),
                ),
            ),
        )
        for n, states in enumerate(customers)
    )
    incidents = tuple(
        IncidentSummary(n, "c0", "C0", "t", "open", p, NOW)
        for n, p in enumerate(priorities, start=1)
    )
    return StatusView(NOW, found, (), incidents, ())


@pytest.mark.parametrize(
    ("status", "state", "headline", "detail"),
    [
        (view("ok", "ok"), "ok", "All systems operational", "2 services checked"),
        (view("down", "down"), "down", "Major outage", "2 down"),
        (view("ok", "down"), "down", "Partial outage", "1 down"),
        (view("ok", "ok", priorities=(1,)), "down", "Partial outage", "1 open incident"),
        (view("degraded", "ok"), "degraded", "Degraded performance", "1 degraded"),
        (view("ok", priorities=(2, 4)), "degraded", "Degraded performance", "2 open incidents"),
        (view("ok", priorities=(3,)), "ok", "All systems operational", "1 open incident"),
        (view("maintenance", "ok"), "maintenance", "Maintenance in progress", "1 maintenance"),
        (
            view("unknown", "unknown"),
            "unknown",
            "Waiting for the first probes",
            "2 services checked",
        ),
    ],
)
def test_banner_shows_the_worst_state(
    status: StatusView, state: str, headline: str, detail: str
) -> None:
    banner = overall(status)
    assert (banner.state, banner.headline, banner.detail) == (state, headline, detail)


def test_banner_says_partial_outage_when_one_service_of_eight_is_down() -> None:
    status = views(("down", "ok"), ("ok", "ok"), ("ok", "ok"), ("ok", "ok"))
    assert (overall(status).state, overall(status).headline) == ("down", "Partial outage")


def test_banner_says_major_outage_when_every_service_of_one_customer_is_down() -> None:
    status = views(("down", "down"), ("ok", "ok"), ("ok", "degraded"))
    assert (overall(status).headline, overall(status).detail) == (
        "Major outage",
        "2 down · 1 degraded",
    )


def test_a_rate_just_below_the_threshold_never_shows_as_the_threshold() -> None:
    assert (pct(188 / 209), pct(1799 / 2000), pct(0.89999), pct(0.9)) == (
        "89.9%",
        "89.9%",
        "89.9%",
        "90.0%",
    )


def test_banner_without_customers_says_nothing_is_monitored() -> None:
    empty = replace(view(), customers=())
    assert overall(empty).headline == "Nothing is monitored yet"


def test_numbers_are_formatted_for_people() -> None:
    assert (pct(0.9912), pct(1.0), pct(0.29), pct(None)) == ("99.1%", "100.0%", "29.0%", "—")
    assert (ms(212.4), ms(1450.0), ms(20_000.0), ms(None)) == ("212 ms", "1.45 s", "20.0 s", "—")
    assert (duration(42), duration(600), duration(3 * 3600 + 60), duration(50 * 3600)) == (
        "42s",
        "10m",
        "3h 01m",
        "2d 2h",
    )
    assert ago(datetime(2026, 12, 1, 8, 59, 18, tzinfo=UTC), NOW) == "42s ago"
    assert ago(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), NOW) == "in 1h 00m"
    assert ago(None, NOW) == "never"


def test_local_form_time_is_read_in_amsterdam_winter_time() -> None:
    start = parse_local_time("2026-12-01T22:00", "start", AMSTERDAM)
    assert start.astimezone(UTC) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


def test_local_form_time_is_read_in_amsterdam_summer_time() -> None:
    start = parse_local_time("2026-07-01T22:00", "start", AMSTERDAM)
    assert start.astimezone(UTC) == datetime(2026, 7, 1, 20, 0, tzinfo=UTC)


def test_ambiguous_local_time_at_the_autumn_change_is_the_first_one() -> None:
    start = parse_local_time("2026-10-25T02:30", "start", AMSTERDAM)
    assert start.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "end: is required"),
        ("tonight", "end: not a date and time: 'tonight'"),
        ("2027-03-28T02:30", "end: 2027-03-28 02:30 does not exist in Europe/Amsterdam"),
    ],
)
def test_bad_local_form_time_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_local_time(text, "end", AMSTERDAM)
    assert caught.value.field == "end"
    assert caught.value.status == 400
    assert caught.value.message.startswith(message)
