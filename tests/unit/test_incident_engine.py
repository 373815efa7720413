"""The incident state machine: opening, scope, priority, people, timers, maintenance, restore."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from classifier import Classifier, Condition, ConditionKind, ProbeResult, Service, TargetKey
from classifier.thresholds import Thresholds
from incidents import (
    ConditionsStillHold,
    Incident,
    IncidentEngine,
    IncidentError,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    MaintenanceWindow,
    ResolvedBy,
)
from sla.priority import Priority
from sla.targets import SlaPolicy
from sla.timers import ClockName

AMS = ZoneInfo("Europe/Amsterdam")
K = IncidentEventKind


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMS).astimezone(UTC)


MON_14 = local(2026, 11, 30, 14)
TUE_09 = local(2026, 12, 1, 9)


def condition(
    kind: ConditionKind,
    user: str | None = "alice",
    *,
    customer: str = "acme",
    location: str = "acme-ams",
    service: Service = Service.CLICK2DIAL,
    since: datetime = MON_14,
) -> Condition:
    if kind in (ConditionKind.LOCATION_UNAVAILABLE, ConditionKind.LOCATION_DEGRADED):
        user = None
    return Condition(
        customer=customer,
        service=service,
        location=location,
        user=user,
        kind=kind,
        priority=kind.priority,
        since=since,
        reason=f"{kind.label} for test",
    )


USER_DOWN = condition(ConditionKind.USER_UNAVAILABLE)
BOB_DOWN = condition(ConditionKind.USER_UNAVAILABLE, "bob")
LOCATION_DOWN = condition(ConditionKind.LOCATION_UNAVAILABLE)
SOME_MISSES = condition(ConditionKind.SOME_MISSES, "carol", service=Service.CRM)
POLICY = SlaPolicy.default()


@pytest.fixture
def engine() -> IncidentEngine:
    return IncidentEngine(POLICY)


def kinds_of(events: list[IncidentEvent]) -> list[IncidentEventKind]:
    return [event.kind for event in events]


# --- opening, scope and priority -------------------------------------------------------------


def test_a_p2_condition_opens_an_incident_with_the_sla_deadlines(engine: IncidentEngine) -> None:
    [event] = engine.apply([USER_DOWN], MON_14)
    assert (event.kind, event.incident, event.customer, event.priority, event.at) == (
        K.OPENED,
        1,
        "acme",
        Priority.HIGH,
        MON_14,
    )
    incident = engine.incident(1)
    assert incident.automatic
    assert incident.status is IncidentStatus.OPEN
    assert incident.opened_at == MON_14
    assert incident.response_due == local(2026, 12, 1, 13, 30)
    assert incident.update_due == local(2026, 12, 1, 13, 30)
    assert incident.repair_due == local(2026, 12, 2, 17)
    assert [(e.user, e.kind, e.priority) for e in incident.scope.values()] == [
        ("alice", ConditionKind.USER_UNAVAILABLE, Priority.HIGH)
    ]
    [entry] = incident.timeline
    assert (entry.at, entry.kind, entry.actor) == (MON_14, "opened", None)
    assert entry.detail == (
        "P2 High: click2dial acme-ams/alice user unavailable (P2): user unavailable for test"
    )


def test_a_raise_to_p1_restarts_every_clock_from_the_raise(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    events = engine.apply([USER_DOWN, LOCATION_DOWN], local(2026, 11, 30, 15))
    assert kinds_of(events) == [K.SCOPE_GREW, K.RAISED]
    assert events[1].priority is Priority.CRITICAL
    incident = engine.incident(1)
    assert incident.priority is Priority.CRITICAL
    assert incident.response_due == local(2026, 12, 1, 10, 30)
    assert incident.update_due == local(2026, 12, 1, 10, 30)
    assert incident.repair_due is None
    assert set(incident.clocks) == {ClockName.RESPONSE, ClockName.UPDATE}
    assert incident.timeline[-1].kind == "raised"
    assert incident.timeline[-1].detail.startswith("P2 → P1: click2dial acme-ams location")


def test_a_lower_priority_condition_joins_without_lowering(engine: IncidentEngine) -> None:
    engine.apply([LOCATION_DOWN], MON_14)
    events = engine.apply([LOCATION_DOWN, SOME_MISSES], MON_14 + timedelta(minutes=5))
    assert kinds_of(events) == [K.SCOPE_GREW]
    assert events[0].priority is Priority.CRITICAL
    assert len(engine.incident(1).scope) == 2


def test_the_incident_never_lowers_itself_when_its_p1_clears(engine: IncidentEngine) -> None:
    engine.apply([LOCATION_DOWN, SOME_MISSES], MON_14)
    assert engine.apply([SOME_MISSES], MON_14 + timedelta(minutes=5)) == []
    incident = engine.incident(1)
    assert (incident.priority, incident.is_open) == (Priority.CRITICAL, True)
    assert incident.timeline[-1].kind == "condition_cleared"


def test_a_condition_whose_priority_rises_raises_the_incident(engine: IncidentEngine) -> None:
    engine.apply([SOME_MISSES], MON_14)
    frequent = condition(ConditionKind.FREQUENT_MISSES, "carol", service=Service.CRM)
    events = engine.apply([frequent], MON_14 + timedelta(hours=1))
    assert kinds_of(events) == [K.RAISED]
    incident = engine.incident(1)
    assert incident.priority is Priority.HIGH
    [entry] = incident.scope.values()
    assert entry.kind is ConditionKind.FREQUENT_MISSES
    assert incident.response_due == local(2026, 12, 1, 14, 30)


def test_it_resolves_itself_when_every_condition_has_cleared(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN, BOB_DOWN], MON_14)
    assert engine.apply([BOB_DOWN], MON_14 + timedelta(minutes=5)) == []
    [event] = engine.apply([], MON_14 + timedelta(minutes=7))
    assert (event.kind, event.incident, event.at) == (K.RESOLVED, 1, MON_14 + timedelta(minutes=7))
    incident = engine.incident(1)
    assert incident.resolved_by is ResolvedBy.AUTO
    assert incident.resolved_at == MON_14 + timedelta(minutes=7)
    assert running(incident) == set()
    assert incident.timeline[-1].detail == "every condition cleared (2 in scope)"
    assert engine.open_incident("acme") is None
    assert engine.tick(local(2026, 12, 5, 12)) == []
    assert engine.next_due() is None


def test_a_condition_that_returns_while_open_stays_in_the_same_incident(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN, BOB_DOWN], MON_14)
    engine.apply([USER_DOWN], MON_14 + timedelta(minutes=5))
    assert engine.apply([USER_DOWN, BOB_DOWN], MON_14 + timedelta(minutes=6)) == []
    assert [i.number for i in engine.incidents()] == [1]
    assert [e.kind for e in engine.incident(1).timeline] == [
        "opened",
        "condition_cleared",
        "condition_returned",
    ]
    assert len(engine.incident(1).active_scope()) == 2


def test_a_condition_after_an_auto_resolve_opens_the_next_number(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.apply([], MON_14 + timedelta(minutes=10))
    [event] = engine.apply([USER_DOWN], MON_14 + timedelta(hours=2))
    assert (event.kind, event.incident) == (K.OPENED, 2)


def test_two_customers_get_one_incident_each(engine: IncidentEngine) -> None:
    other = condition(ConditionKind.LOCATION_UNAVAILABLE, customer="globex", location="gx-utr")
    events = engine.apply([USER_DOWN, other], MON_14)
    assert [(e.kind, e.incident, e.customer, e.priority) for e in events] == [
        (K.OPENED, 1, "acme", Priority.HIGH),
        (K.OPENED, 2, "globex", Priority.CRITICAL),
    ]
    assert engine.open_incident("acme") is engine.incident(1)
    assert engine.open_incident("globex") is engine.incident(2)


def test_conditions_opening_together_open_one_incident_at_the_highest_priority(
    engine: IncidentEngine,
) -> None:
    [event] = engine.apply([SOME_MISSES, LOCATION_DOWN, BOB_DOWN], MON_14)
    assert (event.kind, event.priority) == (K.OPENED, Priority.CRITICAL)
    assert len(engine.incident(1).scope) == 3


def running(incident: Incident) -> set[ClockName]:
    """The SLA clocks of ``incident`` still running."""
    return {name for name, clock in incident.clocks.items() if clock.running}


# --- people ----------------------------------------------------------------------------------


def test_acknowledging_stops_the_response_clock_and_restarts_the_update_clock(
    engine: IncidentEngine,
) -> None:
    engine.apply([LOCATION_DOWN], TUE_09)
    [event] = engine.acknowledge(1, local(2026, 12, 1, 10), "ops@example")
    assert (event.kind, event.actor) == (K.ACKNOWLEDGED, "ops@example")
    incident = engine.incident(1)
    assert incident.status is IncidentStatus.ACKNOWLEDGED
    assert incident.acknowledged_at == local(2026, 12, 1, 10)
    assert incident.response_due == local(2026, 12, 1, 13)  # as computed; the clock stopped
    assert incident.update_due == local(2026, 12, 1, 14)
    assert running(incident) == {ClockName.UPDATE}
    assert incident.clocks[ClockName.RESPONSE].stopped_at == local(2026, 12, 1, 10)
    assert engine.acknowledge(1, local(2026, 12, 1, 10, 5), "ops@example") == []
    assert kinds_of(engine.tick(local(2026, 12, 1, 13, 30))) == [K.UPDATE_WARNING]


def test_an_update_restarts_the_update_clock(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    [event] = engine.update(1, local(2026, 12, 1, 9), "ops", "router replaced")
    assert (event.kind, event.detail) == (K.UPDATED, "router replaced")
    incident = engine.incident(1)
    assert incident.update_due == local(2026, 12, 1, 17)
    assert incident.response_due == local(2026, 12, 1, 13, 30)


def test_a_person_can_lower_the_priority_with_a_reason(engine: IncidentEngine) -> None:
    engine.apply([LOCATION_DOWN], MON_14)
    with pytest.raises(IncidentError, match="needs a reason"):
        engine.change_priority(1, Priority.NORMAL, MON_14, "ops", " ")
    [event] = engine.change_priority(
        1, Priority.NORMAL, local(2026, 11, 30, 16), "ops", "only the test user"
    )
    assert (event.kind, event.priority) == (K.PRIORITY_CHANGED, Priority.NORMAL)
    assert event.detail == "P1 → P3 by ops: only the test user"
    incident = engine.incident(1)
    assert incident.response_due == local(2026, 12, 1, 16)  # 1 working day from 16:00
    assert incident.update_due is None
    assert set(incident.clocks) == {ClockName.RESPONSE}
    # a new P2 raises it again: the incident only never lowers itself
    events = engine.apply([LOCATION_DOWN, BOB_DOWN], local(2026, 11, 30, 16, 30))
    assert kinds_of(events) == [K.SCOPE_GREW, K.RAISED]
    assert engine.incident(1).priority is Priority.HIGH


def test_a_person_resolves_and_stops_every_clock(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.apply([], local(2026, 11, 30, 14, 50))  # cleared, the recovery not over yet
    engine.reopen(1, local(2026, 11, 30, 14, 55), "ops")
    [event] = engine.resolve(1, local(2026, 11, 30, 15), "ops", "fixed the trunk")
    assert (event.kind, event.detail) == (K.RESOLVED, "resolved by ops: fixed the trunk")
    incident = engine.incident(1)
    assert (incident.resolved_by, running(incident)) == (ResolvedBy.PERSON, set())
    # stopped, the clocks keep the deadlines they had: P2 from the reopening, Mon 14:55
    assert (incident.response_due, incident.update_due, incident.repair_due) == (
        local(2026, 12, 1, 14, 25), local(2026, 12, 1, 14, 25), local(2026, 12, 2, 17),
    )  # fmt: skip
    assert engine.resolve(1, local(2026, 11, 30, 15), "ops") == []
    assert engine.tick(local(2026, 12, 3, 12)) == []
    assert engine.acknowledge(1, local(2026, 11, 30, 16), "ops") == []
    assert engine.take_forgotten() == []


def test_resolving_while_a_condition_holds_needs_force_and_names_it(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    with pytest.raises(ConditionsStillHold) as caught:
        engine.resolve(1, local(2026, 11, 30, 15), "ops", "looks fine to me")
    assert str(caught.value) == (
        "incident 1: conditions still hold (click2dial acme-ams/alice user unavailable); "
        "resolve with force to forget them (a problem that persists opens a new incident)"
    )
    assert engine.incident(1).is_open


def test_a_forced_resolve_forgets_the_conditions_and_their_return_opens_a_new_incident(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    [event] = engine.resolve(1, local(2026, 11, 30, 15), "ops", "trunk replaced", force=True)
    assert event.detail == (
        "resolved by ops: trunk replaced; forced while still held, forgotten and watched anew: "
        "click2dial acme-ams/alice user unavailable (P2): " + USER_DOWN.reason
    )
    assert engine.take_forgotten() == [USER_DOWN.key]
    assert engine.incident(1).scope[USER_DOWN.key].cleared_at == local(2026, 11, 30, 15)
    assert engine.conditions_held() == []
    # the classifier forgot it too; three failed rounds later it holds again: a new incident
    events = engine.apply([USER_DOWN], local(2026, 11, 30, 15, 3))
    assert [(e.kind, e.incident) for e in events] == [(K.OPENED, 2)]
    assert (
        engine.incident(2)
        .timeline[0]
        .detail.endswith(
            "; follows incident 1, resolved by ops while "
            "click2dial acme-ams/alice user unavailable still held"
        )
    )


def test_a_restart_between_a_forced_resolve_and_the_return_keeps_the_follows_link(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.resolve(1, local(2026, 11, 30, 15), "ops", "trunk replaced", force=True)
    saved = json.loads(json.dumps(engine.incident(1).to_dict()))
    assert saved["forgotten"] == [
        {
            "service": "click2dial",
            "location": "acme-ams",
            "user": "alice",
            "rule": "unavailable",
            "source": "",
        }
    ]
    restarted = IncidentEngine(POLICY, [Incident.from_dict(saved)])
    events = restarted.apply([USER_DOWN], local(2026, 11, 30, 15, 3))
    assert [(e.kind, e.incident) for e in events] == [(K.OPENED, 2)]
    assert restarted.incident(2).timeline[0].detail == (
        "P2 High: click2dial acme-ams/alice user unavailable (P2): user unavailable for test"
        "; follows incident 1, resolved by ops while "
        "click2dial acme-ams/alice user unavailable still held"
    )
    # The link is used once: the resolved incident no longer waits for it, and says so when
    # saved again.
    assert restarted.incident(1).forgotten == []
    assert [i.number for i in restarted.take_changed()] == [1, 2]


def test_an_incident_saved_before_forgotten_conditions_were_kept_restores_without_a_link(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.resolve(1, local(2026, 11, 30, 15), "ops", "trunk replaced", force=True)
    saved = engine.incident(1).to_dict()
    del saved["forgotten"]
    restarted = IncidentEngine(POLICY, [Incident.from_dict(saved)])
    restarted.apply([USER_DOWN], local(2026, 11, 30, 15, 3))
    assert restarted.incident(2).timeline[0].detail == (
        "P2 High: click2dial acme-ams/alice user unavailable (P2): user unavailable for test"
    )


def test_a_condition_forgotten_twice_follows_only_the_later_resolve(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.resolve(1, local(2026, 11, 30, 15), "ops", "trunk replaced", force=True)
    engine.apply([USER_DOWN], local(2026, 11, 30, 15, 3))
    engine.resolve(2, local(2026, 11, 30, 16), "Sanne", "rebooted", force=True)
    saved = [json.loads(json.dumps(engine.incident(n).to_dict())) for n in (1, 2)]
    assert [len(s["forgotten"]) for s in saved] == [0, 1]
    restarted = IncidentEngine(POLICY, [Incident.from_dict(s) for s in saved])
    restarted.apply([USER_DOWN], local(2026, 11, 30, 16, 3))
    assert (
        restarted.incident(3)
        .timeline[0]
        .detail.endswith(
            "; follows incident 2, resolved by Sanne while "
            "click2dial acme-ams/alice user unavailable still held"
        )
    )


def test_reopening_gives_fresh_deadlines_from_the_reopening(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.acknowledge(1, local(2026, 11, 30, 14, 10), "ops")
    engine.apply([], local(2026, 11, 30, 15))
    [event] = engine.reopen(1, local(2026, 12, 1, 9), "ops", "customer still sees it")
    assert event.kind is K.REOPENED
    incident = engine.incident(1)
    assert (incident.status, incident.acknowledged_at, incident.resolved_by) == (
        IncidentStatus.OPEN,
        None,
        None,
    )
    assert incident.response_due == local(2026, 12, 1, 17)
    assert incident.repair_due == local(2026, 12, 3, 17)
    assert engine.open_incident("acme") is incident
    # the reopened incident takes new conditions of its customer
    assert kinds_of(engine.apply([BOB_DOWN], local(2026, 12, 1, 9, 5))) == [K.SCOPE_GREW]


def test_reopening_next_to_another_open_incident_is_refused(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.apply([], MON_14 + timedelta(minutes=10))
    engine.apply([BOB_DOWN], MON_14 + timedelta(minutes=20))
    with pytest.raises(IncidentError, match="already has open incident 2"):
        engine.reopen(1, MON_14 + timedelta(minutes=30), "ops")


def test_an_unknown_incident_is_an_error(engine: IncidentEngine) -> None:
    with pytest.raises(IncidentError, match="incident 7 does not exist"):
        engine.acknowledge(7, MON_14, "ops")


def test_a_question_is_a_p4_beside_the_automatic_incident(engine: IncidentEngine) -> None:
    [event] = engine.open_question("acme", local(2026, 12, 5, 11), "ops", "how do I ...?")
    assert (event.kind, event.priority, event.automatic) == (K.OPENED, Priority.LOW, False)
    question = engine.incident(1)
    assert question.response_due == local(2026, 12, 7, 17)
    assert (question.update_due, question.repair_due) == (None, None)
    [opened] = engine.apply([USER_DOWN], local(2026, 12, 5, 12))
    assert (opened.kind, opened.incident) == (K.OPENED, 2)
    engine.apply([], local(2026, 12, 5, 13))
    assert engine.incident(1).is_open  # a question never resolves itself


# --- timers ----------------------------------------------------------------------------------


def test_p1_warnings_at_75_percent_and_breaches_at_the_deadline(engine: IncidentEngine) -> None:
    engine.apply([LOCATION_DOWN], TUE_09)
    assert engine.next_due() == local(2026, 12, 1, 12)
    assert engine.tick(local(2026, 12, 1, 11, 59)) == []
    warnings = engine.tick(local(2026, 12, 1, 12))
    assert [(e.kind, e.at) for e in warnings] == [
        (K.RESPONSE_WARNING, local(2026, 12, 1, 12)),
        (K.UPDATE_WARNING, local(2026, 12, 1, 12)),
    ]
    assert engine.tick(local(2026, 12, 1, 12, 30)) == []
    assert engine.next_due() == local(2026, 12, 1, 13)
    breaches = engine.tick(local(2026, 12, 1, 13, 5))
    assert [(e.kind, e.at) for e in breaches] == [
        (K.RESPONSE_BREACH, local(2026, 12, 1, 13)),
        (K.UPDATE_BREACH, local(2026, 12, 1, 13)),
    ]
    incident = engine.incident(1)
    assert incident.breaches == [ClockName.RESPONSE, ClockName.UPDATE]
    assert engine.next_due() is None
    # a later update starts TTTU again; a second update breach is not listed twice
    engine.update(1, local(2026, 12, 1, 14), "ops", "working on it")
    assert kinds_of(engine.tick(local(2026, 12, 2, 10))) == [K.UPDATE_WARNING, K.UPDATE_BREACH]
    assert incident.breaches == [ClockName.RESPONSE, ClockName.UPDATE]


def test_the_p2_repair_clock_warns_and_breaches(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.acknowledge(1, local(2026, 11, 30, 14, 30), "ops")
    for day, hour in ((1, 9), (1, 15), (2, 9)):  # updates in time: no update warning
        engine.update(1, local(2026, 12, day, hour), "ops", "still on it")
    events = engine.tick(local(2026, 12, 2, 12, 45))
    assert [(e.kind, e.at) for e in events] == [(K.REPAIR_WARNING, local(2026, 12, 2, 12, 45))]
    events = engine.tick(local(2026, 12, 2, 17))
    assert (K.REPAIR_BREACH, local(2026, 12, 2, 17)) in [(e.kind, e.at) for e in events]
    assert ClockName.REPAIR in engine.incident(1).breaches


# --- maintenance -----------------------------------------------------------------------------

NIGHT = MaintenanceWindow(
    start=local(2026, 12, 2, 22),
    end=local(2026, 12, 3, 2),
    services=frozenset({Service.CLICK2DIAL}),
    customers=frozenset({"acme"}),
)


def test_a_condition_inside_maintenance_opens_nothing_and_is_recorded(
    engine: IncidentEngine,
) -> None:
    [event] = engine.apply([USER_DOWN], local(2026, 12, 2, 23), [NIGHT])
    assert (event.kind, event.incident, event.customer) == (
        K.MAINTENANCE_SUPPRESSED,
        None,
        "acme",
    )
    assert event.detail.endswith("maintenance until 2026-12-03 02:00 CET")
    assert engine.incidents() == []
    assert engine.in_maintenance() == [USER_DOWN]
    assert engine.next_due() == local(2026, 12, 3, 2)
    assert engine.apply([USER_DOWN], local(2026, 12, 3, 1)) == []


def test_a_condition_still_holding_when_maintenance_ends_opens_at_the_window_end(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], local(2026, 12, 2, 23), [NIGHT])
    assert engine.tick(local(2026, 12, 3, 1, 59)) == []
    [event] = engine.tick(local(2026, 12, 3, 2))
    assert (event.kind, event.incident, event.at) == (K.OPENED, 1, local(2026, 12, 3, 2))
    assert engine.incident(1).response_due == local(2026, 12, 3, 16, 30)
    assert engine.in_maintenance() == []


def test_a_late_apply_still_opens_at_the_window_end(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], local(2026, 12, 2, 23), [NIGHT])
    [event] = engine.apply([USER_DOWN], local(2026, 12, 3, 2, 1))
    assert (event.kind, event.at) == (K.OPENED, local(2026, 12, 3, 2))
    assert engine.incident(1).opened_at == local(2026, 12, 3, 2)


def test_a_condition_clearing_inside_maintenance_never_opens(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], local(2026, 12, 2, 23), [NIGHT])
    assert engine.apply([], local(2026, 12, 3, 0)) == []
    assert engine.tick(local(2026, 12, 3, 3)) == []
    assert engine.incidents() == []


def test_a_window_withdrawn_early_releases_its_conditions_at_once(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], local(2026, 12, 2, 23), [NIGHT])
    [event] = engine.tick(local(2026, 12, 3, 0, 30), maintenance=[])
    assert (event.kind, event.at) == (K.OPENED, local(2026, 12, 3, 0, 30))


def test_maintenance_covers_only_its_services(engine: IncidentEngine) -> None:
    events = engine.apply([USER_DOWN, SOME_MISSES], local(2026, 12, 2, 23), [NIGHT])
    assert [(e.kind, e.incident) for e in events] == [
        (K.MAINTENANCE_SUPPRESSED, None),
        (K.OPENED, 1),
    ]
    assert [e.service for e in engine.incident(1).scope.values()] == [Service.CRM]
    events = engine.tick(local(2026, 12, 3, 2))
    assert [(e.kind, e.incident, e.priority) for e in events] == [
        (K.SCOPE_GREW, 1, Priority.NORMAL),
        (K.RAISED, 1, Priority.HIGH),
    ]


# --- persistence -----------------------------------------------------------------------------


def test_an_incident_survives_a_json_round_trip_unchanged(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN, SOME_MISSES], MON_14)
    engine.acknowledge(1, local(2026, 11, 30, 15), "ops")
    engine.tick(local(2026, 12, 1, 16))
    data = json.loads(json.dumps(engine.incident(1).to_dict()))
    restored = Incident.from_dict(data)
    assert restored == engine.incident(1)
    assert restored.to_dict() == data


def test_a_restarted_engine_continues_the_same_incident(engine: IncidentEngine) -> None:
    engine.apply([USER_DOWN], TUE_09)
    engine.acknowledge(1, local(2026, 12, 1, 9, 30), "ops")
    saved = [json.dumps(i.to_dict()) for i in engine.take_changed()]
    assert engine.take_changed() == []

    again = IncidentEngine(POLICY, [Incident.from_dict(json.loads(s)) for s in saved])
    assert again.open_incident("acme") is again.incident(1)
    assert again.apply([USER_DOWN], local(2026, 12, 1, 10)) == []
    events = again.apply([USER_DOWN, LOCATION_DOWN], local(2026, 12, 1, 10, 30))
    assert [(e.kind, e.incident) for e in events] == [(K.SCOPE_GREW, 1), (K.RAISED, 1)]
    assert again.next_due() == local(2026, 12, 1, 13, 30)  # update warning of the raised P1
    assert kinds_of(again.apply([], local(2026, 12, 1, 11))) == [K.RESOLVED]
    [opened] = again.apply([BOB_DOWN], local(2026, 12, 1, 12))
    assert opened.incident == 2


def test_the_number_counter_can_be_seeded() -> None:
    engine = IncidentEngine(POLICY, next_number=41)
    [event] = engine.apply([USER_DOWN], MON_14)
    assert event.incident == 41


# --- with the classifier ---------------------------------------------------------------------


def test_a_whole_location_outage_opens_straight_at_p1_and_resolves_itself() -> None:
    classifier = Classifier(Thresholds(), {"acme": {"acme-ams": ["alice", "bob", "carol"]}})
    engine = IncidentEngine(POLICY)
    events = []
    for minute in range(12):
        at = TUE_09 + timedelta(minutes=minute)
        for user in ("alice", "bob", "carol"):
            classifier.observe(
                ProbeResult(
                    result_id=f"{minute}-{user}",
                    target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", user),
                    at=at,
                    ok=not 2 <= minute < 6,
                    recognised=None,
                    latency_ms=5.0,
                    status=503,
                    evidence="[STATUS] (503) == 200",
                )
            )
            events += engine.apply_changes(classifier.take_changes(), at)
    assert [(e.kind, e.priority, e.at) for e in events] == [
        (K.OPENED, Priority.CRITICAL, TUE_09 + timedelta(minutes=4)),
        (K.RESOLVED, Priority.CRITICAL, TUE_09 + timedelta(minutes=8)),
    ]
    opened = engine.incident(1).timeline[0]
    assert opened.detail.startswith(
        "P1 Critical: click2dial acme-ams location unavailable (P1): 3 consecutive failed"
    )


def _round(classifier: Classifier, at: datetime, failing: set[str], users: tuple[str, ...]) -> None:
    for user in users:
        classifier.observe(
            ProbeResult(
                result_id=f"{at:%H%M}-{user}",
                target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", user),
                at=at,
                ok=user not in failing,
                recognised=None,
                latency_ms=5.0,
                status=503 if user in failing else 200,
                evidence="[STATUS] (503) == 200",
            )
        )


@pytest.mark.parametrize("still_failing", [True, False])
def test_after_a_restart_the_same_incident_sees_its_conditions_recover(
    still_failing: bool,
) -> None:
    users = ("alice", "bob")
    topology = {"acme": {"acme-ams": list(users)}}
    classifier = Classifier(Thresholds(), topology)
    engine = IncidentEngine(POLICY)
    for minute in range(4):
        _round(classifier, TUE_09 + timedelta(minutes=minute), {"alice"}, users)
        engine.apply_changes(classifier.take_changes(), TUE_09 + timedelta(minutes=minute))
    saved = [json.dumps(i.to_dict()) for i in engine.incidents()]

    # restart: incidents from storage, a fresh classifier told what still held
    engine = IncidentEngine(POLICY, [Incident.from_dict(json.loads(s)) for s in saved])
    classifier = Classifier(Thresholds(), topology)
    restart = TUE_09 + timedelta(minutes=10)
    classifier.resume(engine.conditions_held(), restart)
    assert [c.user for c in classifier.conditions(restart)] == ["alice"]
    events = []
    if still_failing:
        for minute in range(10, 15):
            _round(classifier, TUE_09 + timedelta(minutes=minute), {"alice"}, users)
            events += engine.apply_changes(classifier.take_changes(), restart)
        assert events == []
    for minute in range(20, 23):
        at = TUE_09 + timedelta(minutes=minute)
        _round(classifier, at, set(), users)
        events += engine.apply_changes(classifier.take_changes(), at)
    assert [(e.kind, e.incident, e.at) for e in events] == [
        (K.RESOLVED, 1, TUE_09 + timedelta(minutes=22))
    ]


# --- deadlines follow from the clocks ---------------------------------------------------------


def test_the_incident_keeps_clocks_only_and_its_due_times_follow_from_them(
    engine: IncidentEngine,
) -> None:
    from dataclasses import fields

    assert {f.name for f in fields(Incident)} & {
        "response_due",
        "update_due",
        "repair_due",
    } == set()
    engine.apply([USER_DOWN], MON_14)  # P2, Mon 14:00
    incident = engine.incident(1)
    assert incident.response_due == incident.clocks[ClockName.RESPONSE].due
    assert incident.repair_due == incident.clocks[ClockName.REPAIR].due == local(2026, 12, 2, 17)


def test_a_resolved_incident_keeps_its_stopped_clocks_across_a_restart(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.acknowledge(1, local(2026, 11, 30, 15), "ops")
    engine.resolve(1, local(2026, 11, 30, 16), "ops", "fixed", force=True)
    saved = json.loads(json.dumps(engine.incident(1).to_dict()))
    restored = Incident.from_dict(saved)
    assert restored.clocks == engine.incident(1).clocks
    assert (restored.response_due, restored.update_due, restored.repair_due) == (
        local(2026, 12, 1, 13, 30), local(2026, 12, 1, 14, 30), local(2026, 12, 2, 17),
    )  # fmt: skip
    assert saved["response_due"] == "2026-12-01T12:30:00+00:00"


def test_an_incident_saved_with_due_times_but_no_stopped_clocks_still_has_its_deadlines(
    engine: IncidentEngine,
) -> None:
    engine.apply([USER_DOWN], MON_14)
    engine.resolve(1, local(2026, 11, 30, 16), "ops", "fixed", force=True)
    saved = engine.incident(1).to_dict()
    saved["clocks"] = []  # as saved before stopped clocks were kept
    restored = Incident.from_dict(saved)
    assert (restored.response_due, restored.repair_due) == (
        local(2026, 12, 1, 13, 30), local(2026, 12, 2, 17),
    )  # fmt: skip
    assert all(not clock.running for clock in restored.clocks.values())
    assert restored.clocks[ClockName.REPAIR].due == local(2026, 12, 2, 17)


def test_a_raise_retitles_the_incident_in_the_words_of_its_new_priority(
    engine: IncidentEngine,
) -> None:
    engine.apply([SOME_MISSES], MON_14)
    assert (
        engine.incident(1).title
        == "CRM integration: calls of carol at acme-ams sometimes unrecognised"
    )
    events = engine.apply([SOME_MISSES, USER_DOWN], MON_14 + timedelta(minutes=5))
    assert kinds_of(events) == [K.SCOPE_GREW, K.RAISED]
    assert engine.incident(1).title == "Click2Dial unavailable for alice at acme-ams"
