"""What the incident engine holds in memory stays bounded in a service that runs for months.

``ctiwatch run`` (``keep_resolved``) holds the open incidents and only the incidents resolved
last, as many as a restart loads; ``simulate`` (the default) keeps every incident for its
output. Found reading the code behind the soak benchmark (bench/bench_soak.py): before, every
incident ever opened stayed in memory until a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from classifier import Condition, ConditionKind, Service
from incidents import Incident, IncidentEngine, IncidentError, IncidentEvent, IncidentEventKind
from sla.targets import SlaPolicy

POLICY = SlaPolicy.default()
START = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)


def down(user: str, customer: str = "acme") -> Condition:
    kind = ConditionKind.USER_UNAVAILABLE
    return Condition(
        customer=customer,
        service=Service.CLICK2DIAL,
        location=f"{customer}-ams",
        user=user,
        kind=kind,
        priority=kind.priority,
        since=START,
        reason="unavailable for test",
    )


def step(engine: IncidentEngine, conditions: list[Condition], at: datetime) -> list[IncidentEvent]:
    """One monitor step: apply, then hand the changes over (when the engine lets go)."""
    events = engine.apply(conditions, at)
    engine.take_changed()
    return events


def open_and_resolve(engine: IncidentEngine, times: int) -> datetime:
    """``times`` incidents, each opened by a user down and resolved when it clears."""
    at = START
    for _ in range(times):
        step(engine, [down("alice")], at)
        step(engine, [], at + timedelta(minutes=10))
        at += timedelta(minutes=20)
    return at


def test_a_long_running_engine_holds_only_the_incidents_resolved_last() -> None:
    engine = IncidentEngine(POLICY, keep_resolved=3)

    at = open_and_resolve(engine, 50)

    assert [i.number for i in engine.incidents()] == [48, 49, 50]
    with pytest.raises(IncidentError, match="incident 1 does not exist"):
        engine.incident(1)
    # numbering goes on; an open incident is never let go, however many resolve beside it
    step(engine, [down("alice")], at)
    assert engine.incident(51).is_open
    question = engine.open_question("acme", at, "ops", "a question")[0].incident
    for n in range(5):
        step(engine, [down("alice"), down(f"u{n}", "other")], at + timedelta(minutes=n))
        step(engine, [down("alice")], at + timedelta(minutes=n, seconds=30))
    assert engine.incident(51).is_open and engine.incident(question).is_open
    resolved = [i for i in engine.incidents() if not i.is_open]
    assert len(resolved) == 3


def test_a_recently_resolved_incident_can_still_be_reopened() -> None:
    engine = IncidentEngine(POLICY, keep_resolved=3)
    at = open_and_resolve(engine, 10)

    [event] = engine.reopen(10, at, "ops", "not fixed")

    assert event.kind is IncidentEventKind.REOPENED
    assert engine.incident(10).is_open
    step(engine, [down("alice")], at + timedelta(minutes=1))
    step(engine, [], at + timedelta(minutes=11))  # resolves it again: still held, the newest
    assert [i.number for i in engine.incidents()] == [8, 9, 10]


def test_without_a_bound_every_incident_is_kept_for_the_simulation_output() -> None:
    engine = IncidentEngine(POLICY)
    open_and_resolve(engine, 50)
    assert len(engine.incidents()) == 50


def test_a_restart_with_more_resolved_incidents_than_kept_holds_the_newest_and_numbers_on() -> None:
    before = IncidentEngine(POLICY)
    at = open_and_resolve(before, 6)
    saved = [Incident.from_dict(i.to_dict()) for i in before.incidents()]

    engine = IncidentEngine(POLICY, saved, keep_resolved=2)

    assert [i.number for i in engine.incidents()] == [5, 6]
    [opened] = step(engine, [down("alice")], at)
    assert opened.incident == 7


def test_a_forgotten_condition_returning_after_its_incident_was_let_go_opens_a_new_one() -> None:
    engine = IncidentEngine(POLICY, keep_resolved=1)
    step(engine, [down("alice")], START)
    engine.resolve(1, START + timedelta(minutes=5), "ops", "fixed, we think", force=True)
    step(engine, [down("bob")], START + timedelta(minutes=10))
    step(engine, [], START + timedelta(minutes=20))  # incident 2 resolves: 1 is let go
    assert [i.number for i in engine.incidents()] == [2]

    [opened] = step(engine, [down("alice")], START + timedelta(minutes=30))

    assert (opened.kind, opened.incident) == (IncidentEventKind.OPENED, 3)
    assert "follows incident 1" in opened.detail


def test_keeping_no_resolved_incident_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_resolved must be at least 1"):
        IncidentEngine(POLICY, keep_resolved=0)
