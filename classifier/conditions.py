"""Conditions: the classifier's judgement about one scope, with the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from classifier.observation import Service
from sla.priority import Priority


class Rule(StrEnum):
    """A family of conditions: one scope holds at most one condition per rule."""

    UNAVAILABLE = "unavailable"
    DEGRADED = "degraded"
    MISSES = "misses"


class ConditionKind(StrEnum):
    LOCATION_UNAVAILABLE = "location_unavailable"
    USER_UNAVAILABLE = "user_unavailable"
    LOCATION_DEGRADED = "location_degraded"
    FREQUENT_MISSES = "frequent_misses"
    SOME_MISSES = "some_misses"
    # A generic HTTP check (``Service.HTTP``) failed ``failed_rounds`` rounds in a row: never
    # a location-wide P1, its priority is the check's own (default P3).
    CHECK_FAILED = "check_failed"

    @property
    def rule(self) -> Rule:
        return _RULES[self]

    @property
    def priority(self) -> Priority:
        """The priority ``classification.md`` gives this kind."""
        return _PRIORITIES[self]

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


_RULES = {
    ConditionKind.LOCATION_UNAVAILABLE: Rule.UNAVAILABLE,
    ConditionKind.USER_UNAVAILABLE: Rule.UNAVAILABLE,
    ConditionKind.LOCATION_DEGRADED: Rule.DEGRADED,
    ConditionKind.FREQUENT_MISSES: Rule.MISSES,
    ConditionKind.SOME_MISSES: Rule.MISSES,
    ConditionKind.CHECK_FAILED: Rule.UNAVAILABLE,
}
_PRIORITIES = {
    ConditionKind.LOCATION_UNAVAILABLE: Priority.CRITICAL,
    ConditionKind.USER_UNAVAILABLE: Priority.HIGH,
    ConditionKind.LOCATION_DEGRADED: Priority.HIGH,
    ConditionKind.FREQUENT_MISSES: Priority.HIGH,
    ConditionKind.SOME_MISSES: Priority.NORMAL,
    ConditionKind.CHECK_FAILED: Priority.NORMAL,
}


@dataclass(frozen=True, slots=True, order=True)
class ConditionKey:
    """What a condition is about. ``user`` is ``""`` for a whole-location condition.

    Some and frequent misses of one user share a key (rule ``misses``): one condition whose
    priority rises from 3 to 2 as the misses pile up.

    ``source``: for rule ``unavailable``, the source whose own series met the threshold
    (``central`` or an agent's id), so two sources' conditions on one target are distinct;
    ``""`` for the degraded and misses rules, which count the calls of every source together.
    """

    customer: str
    service: Service
    location: str
    user: str
    rule: Rule
    source: str = ""


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition that holds now.

    ``since``: when the rule first held (the round or call that crossed the threshold).
    ``reason``: the rule and the numbers that crossed it. ``evidence``: the last few log lines
    of the results behind it (UTC time, location/user, the probe's own evidence).
    ``recovering``: the failing stopped and the recovery period is running.
    ``source``: who saw it (``central`` or an agent's id) for the unavailable conditions;
    ``""`` for degraded and misses conditions (every source's calls together).
    """

    customer: str
    service: Service
    location: str
    user: str | None
    kind: ConditionKind
    priority: Priority
    since: datetime
    reason: str
    evidence: tuple[str, ...] = ()
    recovering: bool = False
    source: str = ""

    @property
    def key(self) -> ConditionKey:
        return ConditionKey(
            self.customer, self.service, self.location, self.user or "", self.kind.rule, self.source
        )


@dataclass(frozen=True, slots=True)
class ConditionChanges:
    """What changed since the last ``Classifier.take_changes()``.

    ``started``: conditions that started or whose kind or priority changed (the latest value);
    ``cleared``: keys of conditions that no longer hold.
    """

    started: tuple[Condition, ...] = ()
    cleared: tuple[ConditionKey, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.started or self.cleared)
