"""Escalation one step at a time (snapshot, generation token, ack stops, raise restarts);
who is on call (weekly rotation and overrides)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from alerting.escalation import (
    acknowledge,
    advance,
    build_chain,
    escalated_trigger,
    next_task,
    restart,
    start,
)
from alerting.model import EscalationTarget, RoutingPolicy, TriggerKind
from alerting.rotation import Override, Rotation, on_call, parse_instant
from ctiwatch.config import AlertingConfig, ConfigError
from ctiwatch.settings import rotation_from_config

A, B, C, D = "+31611111111", "+31622222222", "+31633333333", "+31644444444"
POLICY = RoutingPolicy(oncall=(A, B))
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


CHAIN = build_chain((A, B), [("second line", timedelta(minutes=10), (C,))], POLICY)


def test_chain_is_first_line_then_configured_steps_then_cloudcti() -> None:
    assert [(s.name, s.after) for s in CHAIN.steps] == [
        ("first line", timedelta(0)),
        ("second line", timedelta(minutes=10)),
        ("third line", timedelta(minutes=10)),
    ]
    assert CHAIN.steps[0].target == EscalationTarget("first line", (A, B))
    assert CHAIN.steps[2].target == EscalationTarget(
        "third line", landlines=("+31356990230",), email="support@cloudcti.nl"
    )


def test_p1_escalates_one_step_per_due_time_until_the_chain_ends() -> None:
    state = start(12, 1, CHAIN, T0)
    task = next_task(state)
    assert task is not None and (task.step, task.due) == (1, T0 + 10 * MIN)

    early, page = advance(state, task, T0 + 9 * MIN)
    assert page is None and early == state

    state, page = advance(state, task, T0 + 10 * MIN)
    assert page is not None and page.name == "second line"
    task = next_task(state)
    assert task is not None and (task.step, task.due) == (2, T0 + 20 * MIN)

    state, page = advance(state, task, T0 + 25 * MIN)  # late: the next one counts from now
    assert page is not None and page.name == "third line"
    assert next_task(state) is None


def test_a_task_already_run_does_nothing_the_second_time() -> None:
    state = start(12, 1, CHAIN, T0)
    task = next_task(state)
    assert task is not None
    state, first = advance(state, task, T0 + 10 * MIN)
    again, second = advance(state, task, T0 + 30 * MIN)
    assert first is not None and second is None and again == state


def test_acknowledge_stops_the_chain_and_makes_scheduled_steps_stale() -> None:
    state = start(12, 1, CHAIN, T0)
    task = next_task(state)
    assert task is not None
    acked = acknowledge(state)
    assert next_task(acked) is None
    assert advance(acked, task, T0 + 10 * MIN) == (acked, None)


def test_raised_priority_restarts_from_the_first_line_with_a_new_generation() -> None:
    state = start(12, 2, CHAIN, T0)
    old = next_task(state)
    assert old is not None and old.due == T0 + 30 * MIN  # P2 waits three times as long
    raised = restart(state, 1, T0 + 5 * MIN)
    new = next_task(raised)
    assert new is not None
    assert (new.generation, new.step, new.due) == (2, 1, T0 + 15 * MIN)
    assert advance(raised, old, T0 + 40 * MIN) == (raised, None)  # stale generation
    _, page = advance(raised, new, T0 + 15 * MIN)
    assert page is not None and page.name == "second line"


@pytest.mark.parametrize("priority", [3, 4])
def test_p3_and_p4_do_not_escalate(priority: int) -> None:
    assert next_task(start(12, priority, CHAIN, T0)) is None


def test_escalated_trigger_pages_the_step() -> None:
    state = start(12, 1, CHAIN, T0)
    task = next_task(state)
    assert task is not None
    state, page = advance(state, task, T0 + 10 * MIN)
    assert page is not None
    trigger = escalated_trigger(state, page, T0 + 10 * MIN)
    assert trigger.kind is TriggerKind.ESCALATED
    assert trigger.escalation == EscalationTarget("second line", (C,))
    assert trigger.at == T0 + 10 * MIN


def test_chain_without_configured_steps_goes_to_cloudcti_after_ten_minutes() -> None:
    chain = build_chain((A,), [], POLICY)
    assert [(s.name, s.after) for s in chain.steps] == [
        ("first line", timedelta(0)),
        ("third line", timedelta(minutes=10)),
    ]


# --- rotation ---------------------------------------------------------------------------------


def test_weekly_rotation_follows_the_iso_week() -> None:
    rotation = Rotation(weeks=((A,), (B,)), fallback=(D,))
    # Mon 2026-11-30 is ISO week 49 (odd -> weeks[1]); Mon 2026-12-07 is week 50.
    assert on_call(rotation, datetime(2026, 12, 6, 22, 59, tzinfo=UTC)) == (B,)
    assert on_call(rotation, datetime(2026, 12, 6, 23, 0, tzinfo=UTC)) == (A,)  # Mon 00:00 CET


def test_rotation_advances_from_iso_week_53_to_the_next_year() -> None:
    rotation = Rotation(weeks=((A,), (B,)), fallback=(D,))
    # Mon 2026-12-28 is ISO week 53, Mon 2027-01-04 is ISO week 1 of 2027: both odd, yet the
    # second is the week after the first, so the other person covers it.
    assert on_call(rotation, datetime(2026, 12, 28, 12, 0, tzinfo=UTC)) == (B,)
    assert on_call(rotation, datetime(2027, 1, 4, 12, 0, tzinfo=UTC)) == (A,)
    assert on_call(rotation, datetime(2027, 1, 11, 12, 0, tzinfo=UTC)) == (B,)


def test_three_week_rotation_runs_on_across_the_new_year() -> None:
    rotation = Rotation(weeks=((A,), (B,), (C,)))
    mondays = [datetime(2026, 12, 21, 12, tzinfo=UTC) + timedelta(weeks=n) for n in range(4)]
    assert [on_call(rotation, monday) for monday in mondays] == [(B,), (C,), (A,), (B,)]


def test_override_wins_inside_its_window_only() -> None:
    start_ = parse_instant("2026-12-24", "Europe/Amsterdam")
    end = parse_instant("2026-12-26", "Europe/Amsterdam", end=True)
    rotation = Rotation(weeks=((A,),), overrides=(Override(start_, end, (C, D)),))
    assert on_call(rotation, datetime(2026, 12, 23, 22, 59, tzinfo=UTC)) == (A,)
    assert on_call(rotation, datetime(2026, 12, 23, 23, 0, tzinfo=UTC)) == (C, D)
    assert on_call(rotation, datetime(2026, 12, 26, 22, 59, tzinfo=UTC)) == (C, D)
    assert on_call(rotation, datetime(2026, 12, 26, 23, 0, tzinfo=UTC)) == (A,)


def test_without_rotation_the_oncall_list_is_used() -> None:
    config = AlertingConfig(oncall=[A, B])
    rotation = rotation_from_config(config, "Europe/Amsterdam")
    assert on_call(rotation, T0) == (A, B)


def test_rotation_from_config() -> None:
    config = AlertingConfig.model_validate(
        {
            "oncall": [A],
            "rotation": {
                "weeks": [[A], [B]],
                "overrides": [{"start": "2026-12-31T18:00", "end": "2027-01-01", "numbers": [C]}],
            },
        }
    )
    rotation = rotation_from_config(config, "Europe/Amsterdam")
    assert on_call(rotation, datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == (C,)
    assert on_call(rotation, datetime(2026, 12, 31, 16, 59, tzinfo=UTC)) == (B,)  # week 53


def test_bad_override_time_names_the_override() -> None:
    config = AlertingConfig.model_validate(
        {"rotation": {"weeks": [[A]], "overrides": [{"start": "soon", "end": "2027-01-01",
                                                     "numbers": [C]}]}}
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"alerting.rotation.overrides\[0\]: 'soon' is not"):
        rotation_from_config(config, "Europe/Amsterdam")


def test_an_escalation_state_survives_its_stored_form_exactly() -> None:
    from alerting.escalation import state_from_dict, state_to_dict

    chain = build_chain([A, B], [("second line", timedelta(minutes=5), [C])], RoutingPolicy())
    state = start(7, 1, chain, T0, generation=3)
    task = next_task(state)
    assert task is not None
    state, _ = advance(state, task, task.due)
    stored = json.loads(json.dumps(state_to_dict(state)))
    assert state_from_dict(7, stored) == state
