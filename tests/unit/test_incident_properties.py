"""Properties of classifier + engine under random fault schedules and people's actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import Classifier, ProbeResult, Service, TargetKey, Thresholds
from incidents import IncidentEngine, IncidentEvent, IncidentEventKind, MaintenanceWindow
from sla.priority import Priority
from sla.targets import SlaPolicy

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ROUND = timedelta(minutes=1)
TOPOLOGY = {
    "acme": {"acme-ams": ["alice", "bob"], "acme-rtm": ["carol"]},
    "globex": {"gx-utr": ["dave", "erin"]},
}
TARGETS = [
    TargetKey(Service.CLICK2DIAL, customer, location, user)
    for customer, locations in TOPOLOGY.items()
    for location, users in locations.items()
    for user in users
]
POLICY = SlaPolicy.default()
OUTCOMES = st.sampled_from(["ok", "ok", "fail", "fail", "miss"])
ACTIONS = st.sampled_from([None, None, None, "acknowledge", "update", "resolve", "reopen"])


@st.composite
def schedules(draw: st.DrawFn) -> list[tuple[list[str], str | None, int]]:
    """Rounds of per-target outcomes; faults tend to persist over several rounds."""
    rounds: list[tuple[list[str], str | None, int]] = []
    current = ["ok"] * len(TARGETS)
    for _ in range(draw(st.integers(min_value=1, max_value=50))):
        if draw(st.booleans()):
            current = draw(st.lists(OUTCOMES, min_size=len(TARGETS), max_size=len(TARGETS)))
        rounds.append((current, draw(ACTIONS), draw(st.integers(min_value=1, max_value=9))))
    return rounds


def _summary(events: list[IncidentEvent]) -> list[tuple[object, ...]]:
    return [(e.kind, e.incident, e.customer, e.at, e.priority) for e in events]


@settings(max_examples=150, deadline=None)
@given(
    schedule=schedules(),
    maintenance=st.none() | st.tuples(st.integers(0, 40), st.integers(1, 20)),
)
def test_random_fault_schedules_keep_the_incident_invariants(
    schedule: list[tuple[list[str], str | None, int]],
    maintenance: tuple[int, int] | None,
) -> None:
    classifier = Classifier(Thresholds(), TOPOLOGY)
    engine = IncidentEngine(POLICY)  # fed every condition that holds
    incremental = IncidentEngine(POLICY)  # fed only the changes
    windows = []
    if maintenance is not None:
        start = T0 + maintenance[0] * ROUND
        windows.append(
            MaintenanceWindow(start, start + maintenance[1] * ROUND, customers=frozenset({"acme"}))
        )
    events: list[IncidentEvent] = []
    last_priority: dict[int, Priority] = {}

    for index, (outcomes, action, pick) in enumerate(schedule):
        now = T0 + index * ROUND
        for target, outcome in zip(TARGETS, outcomes, strict=True):
            classifier.observe(
                ProbeResult(
                    result_id=f"{index}-{target.user}",
                    target=target,
                    at=now,
                    ok=outcome != "fail",
                    recognised=None if outcome == "fail" else outcome == "ok",
                    latency_ms=1.0,
                    status=200 if outcome != "fail" else 503,
                    evidence=outcome,
                )
            )
        step = engine.apply(classifier.conditions(now), now, windows) + engine.tick(now)
        twin = incremental.apply_changes(classifier.take_changes(), now, windows)
        twin += incremental.tick(now)
        assert _summary(step) == _summary(twin)
        # priorities never fall by themselves (no person changes a priority here)
        for incident in engine.incidents():
            before = last_priority.get(incident.number)
            assert before is None or incident.priority <= before
        if action is not None and engine.incidents():
            numbers = sorted(i.number for i in engine.incidents())
            number = numbers[pick % len(numbers)]
            extra = ["note"] if action == "update" else []
            # a person's resolve is a confirmed (forced) one: what still holds is forgotten
            forced = {"force": True} if action == "resolve" else {}
            try:
                acted = getattr(engine, action)(number, now, "ops", *extra, **forced)
            except ValueError:
                assert action == "reopen"
                acted = []
            try:
                twin_acted = getattr(incremental, action)(number, now, "ops", *extra, **forced)
            except ValueError:
                twin_acted = []
            assert _summary(acted) == _summary(twin_acted)
            forgotten = engine.take_forgotten()
            assert incremental.take_forgotten() == forgotten
            classifier.forget(forgotten)
            step += acted
        events += step
        last_priority = {i.number: i.priority for i in engine.incidents()}

        open_auto: dict[str, int] = {}
        for incident in engine.incidents():
            if incident.is_open and incident.automatic:
                assert incident.customer not in open_auto, "two open automatic incidents"
                open_auto[incident.customer] = incident.number
        for window in windows:
            if window.start <= now < window.end:
                assert not any(
                    e.kind is IncidentEventKind.OPENED and e.customer == "acme" and e.at == now
                    for e in step
                )

    opened = {e.incident for e in events if e.kind is IncidentEventKind.OPENED}
    for incident in engine.incidents():
        assert incident.number in opened
        assert incident.timeline[0].kind == "opened"
        assert incident.timeline[0].at == incident.opened_at
    assert sorted(i.number for i in engine.incidents()) == list(
        range(1, len(engine.incidents()) + 1)
    )
    assert [i.to_dict() for i in engine.incidents()] == [
        i.to_dict() for i in incremental.incidents()
    ]
