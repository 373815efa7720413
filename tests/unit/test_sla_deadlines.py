"""The worked examples of sla.md through compute_deadlines, and the policy's defaults."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ctiwatch.config import ConfigError, SlaConfig, TargetConfig
from ctiwatch.settings import policy_from_config
from sla.calendar import SupportCalendar
from sla.deadlines import Deadlines, compute_deadlines, next_update_due
from sla.priority import Priority
from sla.targets import NO_TARGET, SlaPolicy, Target

AMS = ZoneInfo("Europe/Amsterdam")
POLICY = SlaPolicy.default()


def ams(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def local(due: Deadlines) -> tuple[str | None, str | None, str | None]:
    return tuple(  # type: ignore[return-value]
        None if at is None else at.astimezone(AMS).isoformat()
        for at in (due.response_due, due.update_due, due.repair_due)
    )


# --- sla.md worked examples, one test each ------------------------------------------------------


def test_p1_reported_friday_afternoon_is_due_monday_morning() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2026-12-04T15:00"))
    assert local(due) == ("2026-12-07T10:30:00+01:00", "2026-12-07T10:30:00+01:00", None)


def test_p1_reported_tuesday_evening_is_due_wednesday_midday() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2026-12-01T20:00"))
    assert local(due) == ("2026-12-02T12:30:00+01:00", "2026-12-02T12:30:00+01:00", None)


def test_p2_reported_monday_afternoon_is_due_tuesday_and_repaired_wednesday() -> None:
    due = compute_deadlines(POLICY, Priority.HIGH, ams("2026-11-30T14:00"))
    assert local(due) == (
        "2026-12-01T13:30:00+01:00",
        "2026-12-01T13:30:00+01:00",
        "2026-12-02T17:00:00+01:00",
    )


def test_p2_reported_on_christmas_eve_is_due_monday_afternoon() -> None:
    due = compute_deadlines(POLICY, Priority.HIGH, ams("2026-12-24T16:00"))
    assert local(due) == (
        "2026-12-28T15:30:00+01:00",
        "2026-12-28T15:30:00+01:00",
        "2026-12-29T17:00:00+01:00",
    )


def test_p3_reported_saturday_is_due_monday_closing() -> None:
    due = compute_deadlines(POLICY, Priority.NORMAL, ams("2026-12-05T11:00"))
    assert local(due) == ("2026-12-07T17:00:00+01:00", None, None)


def test_p1_reported_friday_in_summer_time_is_due_monday_in_winter_time() -> None:
    due = compute_deadlines(POLICY, Priority.CRITICAL, ams("2026-10-23T15:30"))
    assert ams("2026-10-23T15:30").utcoffset() == timedelta(hours=2)
    assert local(due) == ("2026-10-26T11:00:00+01:00", "2026-10-26T11:00:00+01:00", None)


# --- other deadline behaviour ---------------------------------------------------------------


def test_p4_reported_inside_support_hours_is_due_same_time_next_working_day() -> None:
    due = compute_deadlines(POLICY, Priority.LOW, ams("2026-12-04T11:00"))
    assert local(due) == ("2026-12-07T11:00:00+01:00", None, None)


def test_next_update_is_due_tttu_after_the_last_update() -> None:
    assert next_update_due(POLICY, Priority.HIGH, ams("2026-12-01T16:00")) == ams(
        "2026-12-02T15:30"
    )
    assert next_update_due(POLICY, Priority.CRITICAL, ams("2026-12-01T10:00")) == ams(
        "2026-12-01T14:00"
    )


def test_no_update_target_means_no_next_update() -> None:
    assert next_update_due(POLICY, Priority.NORMAL, ams("2026-12-01T10:00")) is None


def test_different_update_and_response_targets_give_their_own_deadlines() -> None:
    policy = SlaPolicy(
        calendar=SupportCalendar(),
        targets={
            Priority.CRITICAL: Target(
                response=timedelta(hours=1), update=timedelta(hours=2), repair_working_days=1
            )
        },
    )
    due = compute_deadlines(policy, Priority.CRITICAL, ams("2026-12-01T10:00"))
    assert local(due) == (
        "2026-12-01T11:00:00+01:00",
        "2026-12-01T12:00:00+01:00",
        "2026-12-02T17:00:00+01:00",
    )
    assert policy.target(Priority.LOW) == NO_TARGET


def test_default_policy_holds_the_targets_of_sla_md() -> None:
    day = timedelta(hours=8, minutes=30)
    assert POLICY.target(Priority.CRITICAL) == Target(timedelta(hours=4), timedelta(hours=4), None)
    assert POLICY.target(Priority.HIGH) == Target(timedelta(hours=8), timedelta(hours=8), 2)
    assert POLICY.target(Priority.NORMAL) == Target(day, None, None)
    assert POLICY.target(Priority.LOW) == Target(day, None, None)
    assert (POLICY.warning_at, POLICY.performance_target) == (0.75, 0.90)


def test_policy_targets_cannot_be_changed_after_construction() -> None:
    with pytest.raises(TypeError):
        POLICY.targets[Priority.LOW] = NO_TARGET  # type: ignore[index]


# --- policy from config -------------------------------------------------------------------------


def test_policy_from_default_config_matches_the_default_policy() -> None:
    policy = policy_from_config(SlaConfig())
    for priority in Priority:
        assert policy.target(priority) == POLICY.target(priority)
    assert policy.calendar.timezone == "Europe/Amsterdam"


def test_policy_from_config_sets_p1_repair_target_and_closed_days() -> None:
    cfg = SlaConfig.model_validate(
        {
            "closed_days": ["2026-12-31"],
            "removed_holidays": ["Second Day of Christmas"],
            "targets": {1: {"response": "2h", "update": "4h", "repair_working_days": 1}},
            "warning_at": 0.5,
        }
    )
    policy = policy_from_config(cfg)
    assert policy.target(Priority.CRITICAL) == Target(timedelta(hours=2), timedelta(hours=4), 1)
    assert policy.target(Priority.HIGH) == POLICY.target(Priority.HIGH)
    assert policy.warning_at == 0.5
    due = compute_deadlines(policy, Priority.CRITICAL, ams("2026-12-30T16:00"))
    assert local(due) == (
        "2027-01-04T09:30:00+01:00",
        "2027-01-04T11:30:00+01:00",
        "2027-01-04T17:00:00+01:00",
    )


def test_policy_from_config_refuses_an_unknown_holiday_name() -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from_config(SlaConfig(removed_holidays=["Kings Day"]))
    assert caught.value.errors == [
        "sla.removed_holidays: 'Kings Day' is not a holiday name in NL "
        '(names such as "Good Friday" or "Goede vrijdag")'
    ]


def test_policy_from_config_refuses_an_unknown_holiday_country() -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from_config(SlaConfig(holidays_country="XX"))
    assert caught.value.errors == ["sla: the holidays package knows no country 'XX'"]


def test_target_config_without_update_keeps_none() -> None:
    cfg = SlaConfig(targets={2: TargetConfig(response=timedelta(hours=8), update=None)})
    assert policy_from_config(cfg).target(Priority.HIGH) == Target(timedelta(hours=8), None, None)
