"""The classifier: probe results in, conditions with their SLA priority out (pure, no I/O)."""

from classifier.conditions import (
    Condition,
    ConditionChanges,
    ConditionKey,
    ConditionKind,
    Rule,
)
from classifier.observation import CALLS, CENTRAL, ProbeResult, Service, Source, TargetKey
from classifier.rules import Classifier, Topology
from classifier.thresholds import Thresholds

__all__ = [
    "CALLS",
    "CENTRAL",
    "Classifier",
    "Condition",
    "ConditionChanges",
    "ConditionKey",
    "ConditionKind",
    "ProbeResult",
    "Rule",
    "Service",
    "Source",
    "TargetKey",
    "Thresholds",
    "Topology",
]
