"""Incident titles are short and in the SLA's words; the evidence stays on the timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from classifier.conditions import Condition, ConditionKind
from classifier.observation import Service
from incidents.engine import headline

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("service", "user", "kind", "title"),
    [
        (
            Service.CLICK2DIAL,
            None,
            ConditionKind.LOCATION_UNAVAILABLE,
            "Click2Dial unavailable at acme-ams (all users)",
        ),
        (
            Service.CRM,
            "bob",
            ConditionKind.USER_UNAVAILABLE,
            "CRM integration unavailable for bob at acme-ams",
        ),
        (
            Service.CRM,
            None,
            ConditionKind.LOCATION_DEGRADED,
            "CRM integration: calls at acme-ams often unrecognised (reduced performance)",
        ),
        (
            Service.CRM,
            "bob",
            ConditionKind.FREQUENT_MISSES,
            "CRM integration: calls of bob at acme-ams often unrecognised",
        ),
        (
            Service.CLICK2DIAL,
            "bob",
            ConditionKind.SOME_MISSES,
            "Click2Dial: calls of bob at acme-ams sometimes unrecognised",
        ),
    ],
)
def test_each_condition_kind_gives_a_short_title(
    service: Service, user: str | None, kind: ConditionKind, title: str
) -> None:
    condition = Condition(
        customer="acme",
        service=service,
        location="acme-ams",
        user=user,
        kind=kind,
        priority=kind.priority,
        since=AT,
        reason="3 consecutive failed rounds ... [STATUS] (503) == 2xx",
    )
    assert headline(condition) == title
