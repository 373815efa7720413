"""SLA clocks: warning at 75% of the support time, breach at 100%, scheduling helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sla.deadlines import compute_deadlines
from sla.priority import Priority
from sla.targets import SlaPolicy
from sla.timers import (
    ClockName,
    SlaClock,
    TimerEvent,
    TimerEventKind,
    due_next,
    due_timer_events,
    next_timer_at,
    restart_update_clock,
    start_clocks,
)

AMS = ZoneInfo("Europe/Amsterdam")
POLICY = SlaPolicy.default()
WARNING, BREACH = TimerEventKind.WARNING, TimerEventKind.BREACH
RESPONSE, UPDATE, REPAIR = ClockName.RESPONSE, ClockName.UPDATE, ClockName.REPAIR


def ams(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def test_p1_clocks_warn_after_three_support_hours_and_breach_after_four() -> None:
    clocks = start_clocks(POLICY, Priority.CRITICAL, ams("2026-12-01T09:00"))
    assert clocks == {
        RESPONSE: SlaClock(RESPONSE, ams("2026-12-01T09:00"), ams("2026-12-01T12:00"),
                           ams("2026-12-01T13:00")),
        UPDATE: SlaClock(UPDATE, ams("2026-12-01T09:00"), ams("2026-12-01T12:00"),
                         ams("2026-12-01T13:00")),
    }  # fmt: skip


def test_p1_warning_over_the_weekend_counts_only_support_time() -> None:
    clocks = start_clocks(POLICY, Priority.CRITICAL, ams("2026-12-04T15:00"))
    assert clocks[RESPONSE].warn_at == ams("2026-12-07T09:30")
    assert clocks[RESPONSE].due == ams("2026-12-07T10:30")


def test_p2_repair_clock_warns_at_75_percent_of_its_two_working_days() -> None:
    clocks = start_clocks(POLICY, Priority.HIGH, ams("2026-11-30T14:00"))
    assert clocks[RESPONSE].warn_at == ams("2026-12-01T11:30")
    assert clocks[RESPONSE].due == ams("2026-12-01T13:30")
    # 17 support hours from Tue 08:30 to Wed 17:00; 75% = 12h45m: Wed 12:45.
    assert clocks[REPAIR] == SlaClock(
        REPAIR, ams("2026-12-01T08:30"), ams("2026-12-02T12:45"), ams("2026-12-02T17:00")
    )


def test_p3_reported_saturday_warns_monday_afternoon() -> None:
    clocks = start_clocks(POLICY, Priority.NORMAL, ams("2026-12-05T11:00"))
    assert clocks == {
        RESPONSE: SlaClock(RESPONSE, ams("2026-12-07T08:30"), ams("2026-12-07T14:52:30"),
                           ams("2026-12-07T17:00")),
    }  # fmt: skip


def test_update_clock_restarts_tttu_after_an_update() -> None:
    clock = restart_update_clock(POLICY, Priority.CRITICAL, ams("2026-12-01T11:00"))
    assert clock == SlaClock(
        UPDATE, ams("2026-12-01T11:00"), ams("2026-12-01T14:00"), ams("2026-12-01T15:00")
    )


def test_no_update_clock_for_best_effort_priorities() -> None:
    assert restart_update_clock(POLICY, Priority.LOW, ams("2026-12-01T11:00")) is None


def test_nothing_is_due_before_the_warning() -> None:
    clocks = start_clocks(POLICY, Priority.CRITICAL, ams("2026-12-01T09:00"))
    assert due_timer_events(clocks, set(), ams("2026-12-01T11:59:59")) == []


def test_warnings_are_due_at_75_percent() -> None:
    clocks = start_clocks(POLICY, Priority.CRITICAL, ams("2026-12-01T09:00"))
    assert due_timer_events(clocks, set(), ams("2026-12-01T12:00")) == [
        TimerEvent(RESPONSE, WARNING, ams("2026-12-01T12:00")),
        TimerEvent(UPDATE, WARNING, ams("2026-12-01T12:00")),
    ]


def test_breaches_are_due_at_100_percent_and_fired_events_are_left_out() -> None:
    clocks = start_clocks(POLICY, Priority.CRITICAL, ams("2026-12-01T09:00"))
    fired = {(RESPONSE, WARNING), (UPDATE, WARNING), (UPDATE, BREACH)}
    assert due_timer_events(clocks, fired, ams("2026-12-01T13:00")) == [
        TimerEvent(RESPONSE, BREACH, ams("2026-12-01T13:00")),
    ]


def test_due_events_are_sorted_by_time_across_clocks() -> None:
    clocks = start_clocks(POLICY, Priority.HIGH, ams("2026-11-30T14:00"))
    events = due_timer_events(clocks, set(), ams("2026-12-03T00:00"))
    assert [(e.clock, e.kind, e.at) for e in events] == [
        (RESPONSE, WARNING, ams("2026-12-01T11:30")),
        (UPDATE, WARNING, ams("2026-12-01T11:30")),
        (RESPONSE, BREACH, ams("2026-12-01T13:30")),
        (UPDATE, BREACH, ams("2026-12-01T13:30")),
        (REPAIR, WARNING, ams("2026-12-02T12:45")),
        (REPAIR, BREACH, ams("2026-12-02T17:00")),
    ]


def test_next_timer_is_the_earliest_unfired_event() -> None:
    clocks = start_clocks(POLICY, Priority.HIGH, ams("2026-11-30T14:00"))
    assert next_timer_at(clocks, set()) == ams("2026-12-01T11:30")
    fired = {(RESPONSE, WARNING), (UPDATE, WARNING), (RESPONSE, BREACH), (UPDATE, BREACH)}
    assert next_timer_at(clocks, fired) == ams("2026-12-02T12:45")


def test_no_next_timer_when_everything_fired() -> None:
    clocks = start_clocks(POLICY, Priority.NORMAL, ams("2026-12-01T09:00"))
    assert next_timer_at(clocks, {(RESPONSE, WARNING), (RESPONSE, BREACH)}) is None
    assert next_timer_at({}, set()) is None


# --- one derivation of the deadlines ---------------------------------------------------------

WORKED_EXAMPLES = [
    (Priority.CRITICAL, "2026-12-04T15:00"),
    (Priority.CRITICAL, "2026-12-01T20:00"),
    (Priority.HIGH, "2026-11-30T14:00"),
    (Priority.HIGH, "2026-12-24T16:00"),
    (Priority.NORMAL, "2026-12-05T11:00"),
    (Priority.LOW, "2026-12-05T11:00"),
    (Priority.CRITICAL, "2026-10-23T15:30"),
]


def test_the_clocks_fall_due_at_the_deadlines_of_the_sla_examples() -> None:
    for priority, reported in WORKED_EXAMPLES:
        at = ams(reported)
        clocks = start_clocks(POLICY, priority, at)
        due = compute_deadlines(POLICY, priority, at)
        found = {name.value: clock.due for name, clock in clocks.items()}
        wanted = {"response": due.response_due, "update": due.update_due, "repair": due.repair_due}
        assert found == {k: v for k, v in wanted.items() if v is not None}, (priority, reported)
        update = restart_update_clock(POLICY, priority, at)
        assert (None if update is None else update.due) == due.update_due


def test_a_stopped_clock_keeps_its_due_time_and_raises_nothing() -> None:
    at = ams("2026-12-01T10:00")
    clocks = start_clocks(POLICY, Priority.CRITICAL, at)
    stopped = {name: clock.stop(ams("2026-12-01T11:00")) for name, clock in clocks.items()}
    assert [clock.due for clock in stopped.values()] == [ams("2026-12-01T14:00")] * 2
    assert due_timer_events(stopped, set(), ams("2026-12-31T12:00")) == []
    assert next_timer_at(stopped, set()) is None
    again = stopped[ClockName.RESPONSE].stop(ams("2026-12-01T12:00"))
    assert again.stopped_at == ams("2026-12-01T11:00")  # the first stop counts


def test_the_deadline_met_next_is_the_first_ahead_else_the_one_overdue_longest() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert due_next([], now) is None
    assert due_next([(now + 2 * hour, "repair"), (now + hour, "update")], now) == (
        now + hour,
        "update",
    )
    # An overdue one does not hide the one still ahead ...
    assert due_next([(now - hour, "response"), (now + hour, "repair")], now) == (
        now + hour,
        "repair",
    )
    # ... and when all are overdue, the one overdue longest.
    assert due_next([(now - hour, "update"), (now - 2 * hour, "response")], now) == (
        now - 2 * hour,
        "response",
    )
