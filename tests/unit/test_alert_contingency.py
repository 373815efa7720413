"""The contingency rule of sla.md ("Who is called"), as one pure function: the contingency line
outside support hours when 2 or more end-customers have an open P1 at once, or when an
incident's repair deadline (MTTR) expired; the normal support line for the same inside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerting.contingency import (
    Contingency,
    RepairBreach,
    contingency_call,
    contingency_triggers,
)
from alerting.model import RoutingPolicy, Trigger, TriggerKind

POLICY = RoutingPolicy()
CONTINGENCY_LINE = "+31356990244"
SUPPORT_LINE = "+31356990230"
NIGHT = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # Tue 23:00 in Amsterdam: outside
DAY = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tue 10:00: inside support hours


def test_the_default_lines_are_those_of_the_sla() -> None:
    assert contingency_call(POLICY, in_support_hours=False) == CONTINGENCY_LINE
    assert contingency_call(POLICY, in_support_hours=True) == SUPPORT_LINE


def test_second_customer_with_an_open_p1_at_night_calls_the_contingency_line() -> None:
    calls = contingency_triggers(
        POLICY, NIGHT, in_support_hours=False,
        p1_customers_before=1, p1_customers=2, p1_incidents=[7],
    )  # fmt: skip
    assert calls == [
        Contingency(
            7,
            Trigger(
                TriggerKind.CONTINGENCY, NIGHT, generation=2,
                reason="2 end-customers have an open P1 incident",
            ),
            CONTINGENCY_LINE,
        )
    ]  # fmt: skip


def test_second_customer_with_an_open_p1_inside_support_hours_calls_the_support_line() -> None:
    [call] = contingency_triggers(
        POLICY, DAY, in_support_hours=True,
        p1_customers_before=1, p1_customers=2, p1_incidents=[7],
    )  # fmt: skip
    assert (call.incident, call.call) == (7, SUPPORT_LINE)


@pytest.mark.parametrize(
    ("before", "after", "calls"),
    [(0, 1, 0), (1, 2, 1), (2, 3, 0), (0, 2, 1), (2, 2, 0), (3, 1, 0), (1, 1, 0)],
)
def test_the_p1_count_calls_once_when_it_reaches_two(before: int, after: int, calls: int) -> None:
    found = contingency_triggers(
        POLICY, NIGHT, in_support_hours=False,
        p1_customers_before=before, p1_customers=after, p1_incidents=[3, 4],
    )  # fmt: skip
    assert len(found) == calls


def test_the_call_is_about_the_incident_whose_p1_made_the_count() -> None:
    [call] = contingency_triggers(
        POLICY, NIGHT, in_support_hours=False,
        p1_customers_before=0, p1_customers=2, p1_incidents=[3, 4],
    )  # fmt: skip
    assert call.incident == 4


def test_the_threshold_comes_from_the_policy() -> None:
    three = RoutingPolicy(contingency_min_p1_customers=3)
    reached = [
        contingency_triggers(
            three, NIGHT, in_support_hours=False,
            p1_customers_before=after - 1, p1_customers=after, p1_incidents=[9],
        ) != []
        for after in (1, 2, 3, 4)
    ]  # fmt: skip
    assert reached == [False, False, True, False]


def test_an_expired_repair_deadline_calls_once_per_breach_at_its_instant() -> None:
    breach_at = NIGHT - timedelta(minutes=5)
    calls = contingency_triggers(
        POLICY, NIGHT, in_support_hours=False,
        p1_customers_before=0, p1_customers=0,
        repair_breaches=[RepairBreach(5, breach_at)],
    )  # fmt: skip
    assert calls == [
        Contingency(
            5,
            Trigger(
                TriggerKind.CONTINGENCY, breach_at,
                reason="the repair deadline (MTTR) of incident 5 expired",
            ),
            CONTINGENCY_LINE,
        )
    ]  # fmt: skip


def test_an_expired_repair_deadline_inside_support_hours_calls_the_support_line() -> None:
    [call] = contingency_triggers(
        POLICY, DAY, in_support_hours=True,
        p1_customers_before=0, p1_customers=0, repair_breaches=[RepairBreach(5, DAY)],
    )  # fmt: skip
    assert call.call == SUPPORT_LINE


def test_repair_breaches_come_before_the_p1_count_in_one_step() -> None:
    calls = contingency_triggers(
        POLICY, NIGHT, in_support_hours=False,
        p1_customers_before=1, p1_customers=2, p1_incidents=[8],
        repair_breaches=[RepairBreach(5, NIGHT), RepairBreach(6, NIGHT)],
    )  # fmt: skip
    assert [(c.incident, c.trigger.reason) for c in calls] == [
        (5, "the repair deadline (MTTR) of incident 5 expired"),
        (6, "the repair deadline (MTTR) of incident 6 expired"),
        (8, "2 end-customers have an open P1 incident"),
    ]


def test_nothing_happened_calls_nobody() -> None:
    assert (
        contingency_triggers(
            POLICY, NIGHT, in_support_hours=False, p1_customers_before=1, p1_customers=1
        )
        == []
    )
