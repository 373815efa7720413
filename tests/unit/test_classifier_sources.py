"""classification.md, "Sources": consecutive failures count per source, never interleaved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from classifier import (
    Classifier,
    ConditionKey,
    ConditionKind,
    ProbeResult,
    Service,
    Source,
    TargetKey,
    Thresholds,
)
from classifier.conditions import Rule

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HALF = timedelta(seconds=30)
USERS = ("alice", "bob")
TOPOLOGY = {"acme": {"acme-ams": list(USERS)}}
_ids = count()


def result(user: str, at: datetime, ok: bool, source_id: str = "central") -> ProbeResult:
    return ProbeResult(
        result_id=f"s{next(_ids)}",
        target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", user),
        at=at,
        ok=ok,
        recognised=True if ok else None,
        latency_ms=5.0,
        status=201 if ok else 503,
        evidence="[STATUS] (201) == 201" if ok else "[STATUS] (503) == 201",
        source=Source.PROBE if source_id == "central" else Source.AGENT,
        source_id=source_id,
    )


def interleaved(classifier: Classifier, rounds: int, agent_fails: tuple[str, ...]) -> None:
    """Central rounds at whole minutes (all good), the agent's half a minute later."""
    for i in range(rounds):
        for user in USERS:
            classifier.observe(result(user, T0 + i * MIN, ok=True))
        for user in USERS:
            ok = user not in agent_fails
            classifier.observe(result(user, T0 + i * MIN + HALF, ok, "ams-agent-1"))


def test_an_agents_failures_between_good_central_rounds_make_its_own_p2() -> None:
    classifier = Classifier(Thresholds(), TOPOLOGY)
    interleaved(classifier, 3, agent_fails=("alice",))
    [condition] = classifier.conditions(T0 + 3 * MIN)
    assert (condition.kind, condition.user, condition.source, condition.since) == (
        ConditionKind.USER_UNAVAILABLE,
        "alice",
        "ams-agent-1",
        T0 + 2 * MIN + HALF,
    )
    assert condition.reason == (
        "3 consecutive failed rounds seen by ams-agent-1 for alice at acme-ams: "
        "[STATUS] (503) == 201"
    )
    assert condition.key == ConditionKey(
        "acme", Service.CLICK2DIAL, "acme-ams", "alice", Rule.UNAVAILABLE, "ams-agent-1"
    )


def test_every_user_an_agent_probes_failing_is_a_p1_of_that_agent() -> None:
    classifier = Classifier(Thresholds(), TOPOLOGY)
    interleaved(classifier, 3, agent_fails=USERS)
    [condition] = classifier.conditions(T0 + 3 * MIN)
    assert (condition.kind, condition.user, condition.source, condition.priority) == (
        ConditionKind.LOCATION_UNAVAILABLE,
        None,
        "ams-agent-1",
        1,
    )
    assert condition.reason == (
        "3 consecutive failed rounds seen by ams-agent-1 for every user at acme-ams (2 users): "
        "[STATUS] (503) == 201"
    )


def test_central_and_agent_conditions_on_one_user_are_distinct() -> None:
    classifier = Classifier(Thresholds(), TOPOLOGY)
    for i in range(3):
        for user in USERS:
            classifier.observe(result(user, T0 + i * MIN, ok=user == "bob"))
            classifier.observe(result(user, T0 + i * MIN + HALF, user == "bob", "ams-agent-1"))
    conditions = classifier.conditions(T0 + 3 * MIN)
    assert [(c.user, c.source) for c in conditions] == [
        ("alice", "ams-agent-1"),
        ("alice", "central"),
    ]


def test_a_silent_agent_keeps_its_condition_until_its_own_results_clear_it() -> None:
    classifier = Classifier(Thresholds(), TOPOLOGY)
    interleaved(classifier, 3, agent_fails=("alice",))
    classifier.take_changes()
    for i in range(3, 60):  # an hour of good central rounds, nothing from the agent
        for user in USERS:
            classifier.observe(result(user, T0 + i * MIN, ok=True))
    assert [c.source for c in classifier.conditions(T0 + 60 * MIN)] == ["ams-agent-1"]
    assert not classifier.take_changes()
    for i in range(60, 63):
        classifier.observe(result("alice", T0 + i * MIN + HALF, True, "ams-agent-1"))
    assert classifier.conditions(T0 + 63 * MIN) == []


def test_a_resumed_agent_condition_recovers_only_through_that_agents_rounds() -> None:
    before = Classifier(Thresholds(), TOPOLOGY)
    interleaved(before, 3, agent_fails=("alice",))
    held = before.conditions(T0 + 3 * MIN)
    after = Classifier(Thresholds(), TOPOLOGY)
    after.resume(held, T0 + 10 * MIN)
    for i in range(10, 13):  # good central rounds do not recover the agent's condition
        after.observe(result("alice", T0 + i * MIN, ok=True))
    assert [c.source for c in after.conditions(T0 + 13 * MIN)] == ["ams-agent-1"]
    for i in range(13, 16):
        after.observe(result("alice", T0 + i * MIN, True, "ams-agent-1"))
    assert after.conditions(T0 + 16 * MIN) == []
    assert [key.source for key in after.take_changes().cleared] == ["ams-agent-1"]


def test_the_users_an_agent_probes_are_those_it_sent_results_for() -> None:
    # The agent probes only alice: every user IT probes there failing is the whole location.
    classifier = Classifier(Thresholds(), TOPOLOGY)
    for i in range(3):
        classifier.observe(result("alice", T0 + i * MIN + HALF, False, "ams-agent-1"))
    [condition] = classifier.conditions(T0 + 3 * MIN)
    assert (condition.kind, condition.source) == (
        ConditionKind.LOCATION_UNAVAILABLE,
        "ams-agent-1",
    )
    assert "(1 users)" in condition.reason


def test_forgotten_conditions_need_their_full_threshold_again() -> None:
    # A person's forced resolve: the agent's series starts from nothing, unreported as cleared.
    classifier = Classifier(Thresholds(), TOPOLOGY)
    interleaved(classifier, 3, agent_fails=("alice",))
    [condition] = classifier.conditions(T0 + 3 * MIN)
    classifier.take_changes()
    classifier.forget([condition.key])
    assert classifier.conditions(T0 + 3 * MIN) == []
    assert not classifier.take_changes()
    for i in range(3, 5):
        classifier.observe(result("alice", T0 + i * MIN + HALF, False, "ams-agent-1"))
    assert classifier.conditions(T0 + 5 * MIN) == []
    classifier.observe(result("alice", T0 + 5 * MIN + HALF, False, "ams-agent-1"))
    [again] = classifier.conditions(T0 + 6 * MIN)
    assert (again.key, again.since) == (condition.key, T0 + 5 * MIN + HALF)


def test_forgotten_misses_count_only_the_misses_after_the_resolve() -> None:
    classifier = Classifier(Thresholds(), TOPOLOGY)

    def miss(at: datetime) -> None:
        classifier.observe(
            ProbeResult(
                f"m{next(_ids)}",
                TargetKey(Service.CRM, "acme", "acme-ams", "bob"),
                at,
                True,
                False,
                5.0,
                200,
                "[CONTACT] (none)",
            )
        )

    for i in range(3):
        miss(T0 + i * MIN)
    [condition] = classifier.conditions(T0 + 3 * MIN)
    assert condition.kind is ConditionKind.SOME_MISSES
    classifier.forget([condition.key])
    miss(T0 + 4 * MIN)
    miss(T0 + 5 * MIN)
    assert classifier.conditions(T0 + 5 * MIN) == []
    miss(T0 + 6 * MIN)
    [again] = classifier.conditions(T0 + 6 * MIN)
    assert (again.kind, again.since) == (ConditionKind.SOME_MISSES, T0 + 6 * MIN)
