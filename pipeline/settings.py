"""What the monitor needs to know, as plain values (built from the configuration by the shell)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from alerting.model import CustomerView, RoutingPolicy
from alerting.rotation import Rotation
from classifier.thresholds import Thresholds
from sla.priority import Priority


@dataclass(frozen=True, slots=True)
class CustomerTopology:
    """One customer: who they are (for the e-mail report) and what is probed there."""

    view: CustomerView
    locations: Mapping[str, Sequence[str]]  # location id -> test user ids
    # The customer's HTTP checks (``probes.checks`` and its own): name -> priority of a failure.
    checks: Mapping[str, Priority] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.view.id


@dataclass(frozen=True, slots=True)
class EscalationStepSettings:
    """A configured escalation step after the first line: its name, delay and numbers."""

    name: str
    after: timedelta
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    customers: tuple[CustomerTopology, ...]
    thresholds: Thresholds = field(default_factory=Thresholds)
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)
    rotation: Rotation = field(default_factory=Rotation)
    escalation: tuple[EscalationStepSettings, ...] = ()
