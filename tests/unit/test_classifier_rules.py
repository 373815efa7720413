"""The rules of classification.md, each at and just below its threshold."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from classifier import (
    Classifier,
    Condition,
    ConditionKind,
    ProbeResult,
    Service,
    Source,
    TargetKey,
    Thresholds,
)
from ctiwatch.config import ClassificationConfig
from sla.priority import Priority

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
USERS = ("alice", "bob", "carol")
TOPOLOGY = {"acme": {"acme-ams": list(USERS), "acme-rtm": ["dave"]}}
FAIL = "[STATUS] (503) == 200"
_ids = count()


def result(
    user: str,
    at: datetime,
    ok: bool = True,
    recognised: bool | None = True,
    *,
    service: Service = Service.CLICK2DIAL,
    location: str = "acme-ams",
    customer: str = "acme",
    source: Source = Source.PROBE,
    evidence: str | None = None,
) -> ProbeResult:
    return ProbeResult(
        result_id=f"r{next(_ids)}",
        target=TargetKey(service, customer, location, user),
        at=at,
        ok=ok,
        recognised=recognised if ok else None,
        latency_ms=12.0,
        status=200 if ok else 503,
        evidence=evidence or (FAIL if not ok else "[STATUS] (200) == 200"),
        source=source,
    )


def make() -> Classifier:
    return Classifier(Thresholds(), TOPOLOGY)


def round_at(
    classifier: Classifier,
    at: datetime,
    failing: Iterable[str] = (),
    users: Iterable[str] = USERS,
) -> bool:
    """One probe round at acme-ams (click2dial): every user, ``failing`` ones fail."""
    down = set(failing)
    changed = False
    for user in users:
        changed |= classifier.observe(result(user, at, ok=user not in down))
    return changed


def kinds(conditions: list[Condition]) -> list[tuple[ConditionKind, str | None]]:
    return [(c.kind, c.user) for c in conditions]


# --- thresholds ------------------------------------------------------------------------------


def test_thresholds_mirror_the_configuration_section() -> None:
    assert Thresholds(**ClassificationConfig().model_dump()) == Thresholds()


def test_some_misses_must_stay_below_frequent_misses() -> None:
    with pytest.raises(ValueError, match="some_misses must be lower"):
        Thresholds(some_misses=10, frequent_misses=10)


# --- user unavailable ------------------------------------------------------------------------


def test_two_failed_rounds_for_one_user_are_not_a_condition_yet() -> None:
    classifier = make()
    for i in range(2):
        round_at(classifier, T0 + i * MIN, failing=["alice"])
    assert classifier.conditions(T0 + 2 * MIN) == []


def test_three_failed_rounds_for_one_user_is_a_p2_with_the_probe_evidence() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=["alice"])
    [condition] = classifier.conditions(T0 + 3 * MIN)
    assert condition == Condition(
        customer="acme",
        service=Service.CLICK2DIAL,
        location="acme-ams",
        user="alice",
        kind=ConditionKind.USER_UNAVAILABLE,
        priority=Priority.HIGH,
        since=T0 + 2 * MIN,
        reason=f"3 consecutive failed rounds for alice at acme-ams: {FAIL}",
        evidence=(
            f"2026-12-01T09:00:00Z acme-ams/alice {FAIL}",
            f"2026-12-01T09:01:00Z acme-ams/alice {FAIL}",
            f"2026-12-01T09:02:00Z acme-ams/alice {FAIL}",
        ),
        recovering=False,
        source="central",
    )


def test_a_good_round_in_between_restarts_the_failure_count() -> None:
    classifier = make()
    for i, failing in enumerate([["alice"], ["alice"], [], ["alice"], ["alice"]]):
        round_at(classifier, T0 + i * MIN, failing=failing)
    assert classifier.conditions(T0 + 5 * MIN) == []


def test_misses_never_count_as_failed_rounds() -> None:
    classifier = make()
    for i in range(5):
        classifier.observe(result("alice", T0 + i * MIN, ok=True, recognised=False))
    assert ConditionKind.USER_UNAVAILABLE not in {c.kind for c in classifier.conditions(T0)}


def test_real_call_events_never_count_as_rounds() -> None:
    classifier = make()
    for i in range(5):
        classifier.observe(result("alice", T0 + i * MIN, ok=False, source=Source.CALL))
    assert classifier.conditions(T0 + 5 * MIN) == []


def test_an_agent_result_is_a_round_like_a_probe_result() -> None:
    classifier = make()
    for i in range(3):
        classifier.observe(result("alice", T0 + i * MIN, ok=False, source=Source.AGENT))
    assert kinds(classifier.conditions(T0 + 3 * MIN)) == [(ConditionKind.USER_UNAVAILABLE, "alice")]


def test_results_outside_the_topology_are_ignored() -> None:
    classifier = make()
    for i in range(3):
        assert not classifier.observe(result("mallory", T0 + i * MIN, ok=False))
    assert classifier.conditions(T0 + 3 * MIN) == []


# --- recovery and flapping -------------------------------------------------------------------


def test_a_failed_user_clears_after_three_good_rounds_and_recovers_visibly_before() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=["alice"])
    for i in range(3, 5):
        assert not round_at(classifier, T0 + i * MIN)
        [condition] = classifier.conditions(T0 + i * MIN)
        assert condition.recovering
    assert round_at(classifier, T0 + 5 * MIN)
    assert classifier.conditions(T0 + 5 * MIN) == []


def test_flapping_within_the_recovery_period_never_clears_the_condition() -> None:
    classifier = make()
    pattern = [1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0]  # 1 = alice fails
    for i, failing in enumerate(pattern):
        round_at(classifier, T0 + i * MIN, failing=["alice"] if failing else [])
        if i >= 2:
            assert kinds(classifier.conditions(T0 + i * MIN)) == [
                (ConditionKind.USER_UNAVAILABLE, "alice")
            ]
    [condition] = classifier.conditions(T0 + 11 * MIN)
    assert condition.since == T0 + 2 * MIN
    changes = classifier.take_changes()
    assert [c.kind for c in changes.started] == [ConditionKind.USER_UNAVAILABLE]
    assert changes.cleared == ()


# --- location unavailable --------------------------------------------------------------------


def test_every_user_failing_two_rounds_is_not_a_condition_yet() -> None:
    classifier = make()
    for i in range(2):
        round_at(classifier, T0 + i * MIN, failing=USERS)
    assert classifier.conditions(T0 + 2 * MIN) == []


def test_every_user_failing_three_rounds_is_one_p1_instead_of_three_p2() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=USERS)
    [condition] = classifier.conditions(T0 + 3 * MIN)
    assert (condition.kind, condition.user, condition.priority) == (
        ConditionKind.LOCATION_UNAVAILABLE,
        None,
        Priority.CRITICAL,
    )
    assert condition.since == T0 + 2 * MIN
    assert condition.reason == (
        f"3 consecutive failed rounds for every user at acme-ams (3 users): {FAIL}"
    )
    assert len(condition.evidence) == 3
    # the users' P2s were held back for the round: only the P1 was ever reported
    changes = classifier.take_changes()
    assert [c.kind for c in changes.started] == [ConditionKind.LOCATION_UNAVAILABLE]
    assert changes.cleared == ()


def test_a_location_with_one_user_down_is_a_whole_location_p1() -> None:
    classifier = make()
    for i in range(3):
        classifier.observe(result("dave", T0 + i * MIN, ok=False, location="acme-rtm"))
    assert kinds(classifier.conditions(T0 + 3 * MIN)) == [
        (ConditionKind.LOCATION_UNAVAILABLE, None)
    ]


def test_two_of_three_users_down_are_two_p2() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=["alice", "bob"])
    assert kinds(classifier.conditions(T0 + 3 * MIN)) == [
        (ConditionKind.USER_UNAVAILABLE, "alice"),
        (ConditionKind.USER_UNAVAILABLE, "bob"),
    ]


def test_a_held_user_p2_is_released_when_the_rest_of_the_round_answers() -> None:
    classifier = make()
    for i in range(2):
        round_at(classifier, T0 + i * MIN, failing=USERS)
    # alice's third failure arrives first: bob and carol are one round short
    classifier.observe(result("alice", T0 + 2 * MIN, ok=False))
    assert classifier.conditions(T0 + 2 * MIN) == []
    classifier.observe(result("bob", T0 + 2 * MIN, ok=True))
    [condition] = classifier.conditions(T0 + 2 * MIN)
    assert (condition.kind, condition.user, condition.since) == (
        ConditionKind.USER_UNAVAILABLE,
        "alice",
        T0 + 2 * MIN,
    )


def test_the_p1_turns_into_p2_for_the_users_still_failing_after_one_recovers() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=USERS)
    for i in range(3, 6):
        round_at(classifier, T0 + i * MIN, failing=["bob", "carol"])
    assert kinds(classifier.conditions(T0 + 6 * MIN)) == [
        (ConditionKind.USER_UNAVAILABLE, "bob"),
        (ConditionKind.USER_UNAVAILABLE, "carol"),
    ]


def test_the_p1_clears_with_the_last_user_after_three_good_rounds() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=USERS)
    classifier.take_changes()
    for i in range(3, 5):
        round_at(classifier, T0 + i * MIN)
        [condition] = classifier.conditions(T0 + i * MIN)
        assert condition.kind is ConditionKind.LOCATION_UNAVAILABLE
        assert condition.recovering
    round_at(classifier, T0 + 5 * MIN)
    assert classifier.conditions(T0 + 5 * MIN) == []
    changes = classifier.take_changes()
    assert changes.started == ()
    assert [key.rule for key in changes.cleared] == ["unavailable"]


# --- location degraded -----------------------------------------------------------------------


def calls(
    classifier: Classifier, start: datetime, misses: int, total: int, step: timedelta = MIN
) -> datetime:
    """``total`` calls spread over the users, the first ``misses`` unrecognised; last instant."""
    at = start
    for i in range(total):
        at = start + i * step
        user = USERS[i % len(USERS)]
        classifier.observe(result(user, at, recognised=i >= misses, source=Source.CALL))
    return at


def degraded(classifier: Classifier, now: datetime) -> list[Condition]:
    return [c for c in classifier.conditions(now) if c.kind is ConditionKind.LOCATION_DEGRADED]


def test_recognition_below_ninety_percent_over_twenty_calls_is_a_p2() -> None:
    classifier = make()
    last = calls(classifier, T0, misses=3, total=20)
    [condition] = degraded(classifier, last)
    assert condition.priority is Priority.HIGH
    assert condition.user is None
    assert condition.since == T0 + 19 * MIN
    assert condition.reason == "recognition 85.0% (17/20) over the trailing hour < 90%"
    assert condition.evidence[0].startswith("2026-12-01T09:00:00Z acme-ams/alice")


def test_exactly_ninety_percent_is_not_degraded() -> None:
    classifier = make()
    last = calls(classifier, T0, misses=2, total=20)
    assert degraded(classifier, last) == []


def test_nineteen_calls_are_too_few_to_judge_the_rate() -> None:
    classifier = make()
    last = calls(classifier, T0, misses=5, total=19)
    assert degraded(classifier, last) == []


def test_a_call_counts_for_the_trailing_hour_until_its_minute_is_an_hour_old() -> None:
    early = make()
    calls(early, T0, misses=3, total=19)  # 09:00 .. 09:18, misses at 09:00-09:02
    early.observe(result("alice", T0 + timedelta(minutes=59, seconds=59), source=Source.CALL))
    assert len(degraded(early, T0 + timedelta(minutes=59, seconds=59))) == 1

    late = make()
    calls(late, T0, misses=3, total=19)
    late.observe(result("alice", T0 + timedelta(hours=1), source=Source.CALL))
    assert degraded(late, T0 + timedelta(hours=1)) == []  # the 09:00 miss left the window


def test_degraded_clears_after_thirty_healthy_minutes() -> None:
    classifier = make()
    calls(classifier, T0, misses=3, total=20)  # degraded at 09:19
    # 10:00 the 09:00 call leaves the window: 19 calls, too few to be degraded any more
    [condition] = degraded(classifier, T0 + timedelta(minutes=59))
    assert not condition.recovering
    [condition] = degraded(classifier, T0 + timedelta(hours=1))
    assert condition.recovering
    assert classifier.next_change_at() == T0 + timedelta(hours=1, minutes=1)
    assert len(degraded(classifier, T0 + timedelta(hours=1, minutes=29, seconds=59))) == 1
    assert degraded(classifier, T0 + timedelta(hours=1, minutes=30)) == []
    assert classifier.next_change_at() is None


def test_a_bad_call_during_the_healthy_period_keeps_the_location_degraded() -> None:
    classifier = make()
    calls(classifier, T0, misses=3, total=20)  # degraded at 09:19
    degraded(classifier, T0 + timedelta(hours=1))  # healthy (too few calls) from 10:00
    calls(classifier, T0 + timedelta(hours=1, minutes=10), misses=20, total=20, step=MIN / 60)
    assert not degraded(classifier, T0 + timedelta(hours=1, minutes=40))[0].recovering


# --- misses ----------------------------------------------------------------------------------


def misses_of(classifier: Classifier, instants: Iterable[datetime], user: str = "alice") -> None:
    for at in instants:
        classifier.observe(result(user, at, recognised=False, service=Service.CRM))


def miss_conditions(classifier: Classifier, now: datetime) -> list[Condition]:
    return [c for c in classifier.conditions(now) if c.kind.rule == "misses"]


def test_two_misses_in_a_day_are_nothing() -> None:
    classifier = make()
    misses_of(classifier, [T0, T0 + MIN])
    assert miss_conditions(classifier, T0 + MIN) == []


def test_three_misses_in_a_day_are_a_p3() -> None:
    classifier = make()
    misses_of(classifier, [T0, T0 + MIN, T0 + 2 * MIN])
    [condition] = miss_conditions(classifier, T0 + 2 * MIN)
    assert (condition.kind, condition.priority, condition.user, condition.service) == (
        ConditionKind.SOME_MISSES,
        Priority.NORMAL,
        "alice",
        Service.CRM,
    )
    assert condition.reason == (
        "3 unrecognised calls for alice at acme-ams in the trailing 24 hours (3 to 9)"
    )
    assert len(condition.evidence) == 3


def test_nine_misses_in_a_day_are_still_a_p3() -> None:
    classifier = make()
    misses_of(classifier, [T0 + i * MIN for i in range(9)])
    [condition] = miss_conditions(classifier, T0 + 9 * MIN)
    assert condition.kind is ConditionKind.SOME_MISSES


def test_ten_misses_in_a_day_raise_the_same_condition_to_p2() -> None:
    classifier = make()
    misses_of(classifier, [T0 + i * MIN for i in range(10)])
    [condition] = miss_conditions(classifier, T0 + 9 * MIN)
    assert (condition.kind, condition.priority, condition.since) == (
        ConditionKind.FREQUENT_MISSES,
        Priority.HIGH,
        T0 + 2 * MIN,
    )
    assert condition.reason == (
        "at least 10 unrecognised calls for alice at acme-ams in the trailing 24 hours (≥ 10)"
    )
    changes = classifier.take_changes()
    assert [c.kind for c in changes.started] == [ConditionKind.FREQUENT_MISSES]


def test_the_tenth_miss_exactly_a_day_after_the_first_counts_nine() -> None:
    classifier = make()
    first = T0
    misses_of(classifier, [first + i * timedelta(hours=2) for i in range(9)])
    misses_of(classifier, [first + timedelta(hours=24)])
    [condition] = miss_conditions(classifier, first + timedelta(hours=24))
    assert condition.kind is ConditionKind.SOME_MISSES


def test_the_tenth_miss_a_second_inside_the_day_is_frequent() -> None:
    classifier = make()
    first = T0
    misses_of(classifier, [first + i * timedelta(hours=2) for i in range(9)])
    misses_of(classifier, [first + timedelta(hours=24) - timedelta(seconds=1)])
    [condition] = miss_conditions(classifier, first + timedelta(hours=24))
    assert condition.kind is ConditionKind.FREQUENT_MISSES


def test_a_miss_condition_clears_thirty_minutes_after_the_last_miss() -> None:
    classifier = make()
    last = T0 + 2 * MIN
    misses_of(classifier, [T0, T0 + MIN, last])
    assert classifier.next_change_at() == last + timedelta(minutes=30)
    assert len(miss_conditions(classifier, last + timedelta(minutes=29, seconds=59))) == 1
    assert classifier.advance(last + timedelta(minutes=30))
    assert miss_conditions(classifier, last + timedelta(minutes=30)) == []


def test_a_new_miss_within_the_quiet_period_keeps_the_condition() -> None:
    classifier = make()
    misses_of(classifier, [T0, T0 + MIN, T0 + 2 * MIN, T0 + 20 * MIN])
    [condition] = miss_conditions(classifier, T0 + 49 * MIN)
    assert condition.since == T0 + 2 * MIN
    assert miss_conditions(classifier, T0 + 50 * MIN) == []


def test_a_cleared_miss_condition_returns_only_with_a_new_miss() -> None:
    classifier = make()
    misses_of(classifier, [T0, T0 + MIN, T0 + 2 * MIN])
    assert miss_conditions(classifier, T0 + 40 * MIN) == []
    round_at(classifier, T0 + 41 * MIN)  # good, recognised calls: no new miss
    assert miss_conditions(classifier, T0 + 41 * MIN) == []
    misses_of(classifier, [T0 + 45 * MIN])
    [condition] = miss_conditions(classifier, T0 + 45 * MIN)
    assert (condition.kind, condition.since) == (ConditionKind.SOME_MISSES, T0 + 45 * MIN)
    assert condition.reason.startswith("4 unrecognised calls")


def test_misses_of_different_users_are_counted_apart() -> None:
    classifier = make()
    misses_of(classifier, [T0, T0 + MIN], user="alice")
    misses_of(classifier, [T0 + 2 * MIN], user="bob")
    assert miss_conditions(classifier, T0 + 2 * MIN) == []


# --- changes ---------------------------------------------------------------------------------


def test_take_changes_reports_each_change_once() -> None:
    classifier = make()
    for i in range(3):
        round_at(classifier, T0 + i * MIN, failing=["alice"])
    first = classifier.take_changes()
    assert [(c.kind, c.user) for c in first.started] == [(ConditionKind.USER_UNAVAILABLE, "alice")]
    assert not classifier.take_changes()
    for i in range(3, 6):
        round_at(classifier, T0 + i * MIN)
    cleared = classifier.take_changes()
    assert cleared.started == ()
    assert cleared.cleared == (first.started[0].key,)


# --- restart ---------------------------------------------------------------------------------


def test_resumed_conditions_are_not_reported_again_and_still_recover() -> None:
    before = make()
    for i in range(3):
        round_at(before, T0 + i * MIN, failing=USERS)
    misses_of(before, [T0, T0 + MIN, T0 + 2 * MIN], user="bob")
    held = before.conditions(T0 + 3 * MIN)
    assert [c.kind for c in held] == [
        ConditionKind.LOCATION_UNAVAILABLE,
        ConditionKind.SOME_MISSES,
    ]

    after = make()
    restart = T0 + 10 * MIN
    after.resume(held, restart)
    assert after.conditions(restart) == held
    assert not after.take_changes()
    for i in range(10, 12):
        round_at(after, T0 + i * MIN)
    assert [c.kind for c in after.conditions(T0 + 12 * MIN)] == [
        ConditionKind.LOCATION_UNAVAILABLE,
        ConditionKind.SOME_MISSES,
    ]
    round_at(after, T0 + 12 * MIN)
    assert [c.kind for c in after.conditions(T0 + 12 * MIN)] == [ConditionKind.SOME_MISSES]
    # the miss condition clears a quiet period after the restart (its last miss is unknown)
    assert after.conditions(restart + timedelta(minutes=30)) == []
    assert [key.rule for key in after.take_changes().cleared] == ["unavailable", "misses"]


def test_a_resumed_miss_condition_is_kept_by_a_new_miss() -> None:
    before = make()
    misses_of(before, [T0, T0 + MIN, T0 + 2 * MIN])
    after = make()
    after.resume(before.conditions(T0 + 3 * MIN), T0 + 5 * MIN)
    misses_of(after, [T0 + 20 * MIN])  # only one miss known after the restart
    [condition] = miss_conditions(after, T0 + 49 * MIN)
    assert condition.kind is ConditionKind.SOME_MISSES
    assert miss_conditions(after, T0 + 50 * MIN) == []


def test_a_miss_exactly_at_the_end_of_the_quiet_period_starts_the_condition_anew() -> None:
    classifier = make()
    misses_of(classifier, [T0, T0 + MIN, T0 + 2 * MIN])
    classifier.take_changes()
    misses_of(classifier, [T0 + 32 * MIN])
    [condition] = miss_conditions(classifier, T0 + 32 * MIN)
    assert (condition.since, condition.reason[:22]) == (T0 + 32 * MIN, "4 unrecognised calls f")
    changes = classifier.take_changes()
    assert [c.since for c in changes.started] == [T0 + 32 * MIN]
    assert changes.cleared == ()
