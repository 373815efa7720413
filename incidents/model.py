"""Incidents, their timeline and the engine's events: plain values that serialise to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from classifier.conditions import Condition, ConditionKey, ConditionKind, Rule
from classifier.observation import CENTRAL, Service
from incidents.maintenance import MaintenanceWindow as MaintenanceWindow  # re-export
from sla.priority import Priority
from sla.timers import ClockName, SlaClock, TimerEventKind


class IncidentError(ValueError):
    """A person's action that cannot apply (unknown incident, a second open incident, ...)."""


class ConditionsStillHold(IncidentError):
    """Resolving needs ``force``: conditions in the incident's scope still hold.

    The console asks the person to confirm, the CLI and API ask for ``force``; ``conditions``
    are those that hold, named in the message.
    """

    def __init__(self, number: int, conditions: list[Condition]) -> None:
        self.number = number
        self.conditions = conditions
        names = "; ".join(
            f"{c.service} {c.location}{'/' + c.user if c.user else ''} {c.kind.label}"
            + (f" (seen by {c.source})" if c.source and c.source != CENTRAL else "")
            for c in conditions
        )
        super().__init__(
            f"incident {number}: conditions still hold ({names}); resolve with force to "
            "forget them (a problem that persists opens a new incident)"
        )


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ResolvedBy(StrEnum):
    AUTO = "auto"
    PERSON = "person"


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    SCOPE_GREW = "scope_grew"
    RAISED = "raised"
    PRIORITY_CHANGED = "priority_changed"
    ACKNOWLEDGED = "acknowledged"
    UPDATED = "updated"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    MAINTENANCE_SUPPRESSED = "maintenance_suppressed"
    RESPONSE_WARNING = "response_warning"
    RESPONSE_BREACH = "response_breach"
    UPDATE_WARNING = "update_warning"
    UPDATE_BREACH = "update_breach"
    REPAIR_WARNING = "repair_warning"
    REPAIR_BREACH = "repair_breach"

    @classmethod
    def of_timer(cls, clock: ClockName, kind: TimerEventKind) -> IncidentEventKind:
        return cls(f"{clock.value}_{kind.value}")


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """Something that happened to an incident (or, for ``maintenance_suppressed``, did not).

    ``incident`` is None only for ``maintenance_suppressed``: no incident was opened.
    ``priority`` is the incident's priority after the event (the condition's when suppressed).
    """

    kind: IncidentEventKind
    incident: int | None
    customer: str
    at: datetime
    priority: Priority
    detail: str
    actor: str | None = None
    automatic: bool = True


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One change, with its time and its reason. ``actor`` None: ctiwatch itself.

    ``kind`` is an ``IncidentEventKind`` value, or one of ``condition_cleared``,
    ``condition_returned``, ``condition_changed``; the shell may add its own (``alert_sent``).
    """

    at: datetime
    kind: str
    detail: str
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "kind": self.kind, "detail": self.detail, "actor": self.actor}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimelineEntry:
        return cls(
            at=_time(data["at"]), kind=data["kind"], detail=data["detail"], actor=data.get("actor")
        )


@dataclass(slots=True)
class ScopeEntry:
    """One condition in an incident's scope; ``cleared_at`` None while it holds.

    ``source``: who saw it (``Condition.source``); an unavailable entry stored before sources
    were kept apart reads back as the central prober's.
    """

    customer: str
    service: Service
    location: str
    user: str | None
    kind: ConditionKind
    priority: Priority
    since: datetime
    reason: str
    evidence: tuple[str, ...]
    joined_at: datetime
    cleared_at: datetime | None = None
    source: str = ""

    @property
    def key(self) -> ConditionKey:
        return ConditionKey(
            self.customer, self.service, self.location, self.user or "", self.kind.rule, self.source
        )

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @classmethod
    def of(cls, condition: Condition, joined_at: datetime) -> ScopeEntry:
        return cls(
            customer=condition.customer,
            service=condition.service,
            location=condition.location,
            user=condition.user,
            kind=condition.kind,
            priority=condition.priority,
            since=condition.since,
            reason=condition.reason,
            evidence=condition.evidence,
            joined_at=joined_at,
            source=condition.source,
        )

    def refresh(self, condition: Condition) -> None:
        """The condition's latest kind, priority, reason and evidence."""
        self.kind, self.priority = condition.kind, condition.priority
        self.reason, self.evidence = condition.reason, condition.evidence

    def condition(self) -> Condition:
        return Condition(
            customer=self.customer,
            service=self.service,
            location=self.location,
            user=self.user,
            kind=self.kind,
            priority=self.priority,
            since=self.since,
            reason=self.reason,
            evidence=self.evidence,
            source=self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service.value,
            "location": self.location,
            "user": self.user,
            "kind": self.kind.value,
            "priority": int(self.priority),
            "since": _iso(self.since),
            "reason": self.reason,
            "evidence": list(self.evidence),
            "joined_at": _iso(self.joined_at),
            "cleared_at": _iso(self.cleared_at),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, customer: str, data: dict[str, Any]) -> ScopeEntry:
        kind = ConditionKind(data["kind"])
        default_source = CENTRAL if kind.rule is Rule.UNAVAILABLE else ""
        return cls(
            customer=customer,
            service=Service(data["service"]),
            location=data["location"],
            user=data.get("user"),
            kind=kind,
            priority=Priority(data["priority"]),
            since=_time(data["since"]),
            reason=data["reason"],
            evidence=tuple(data.get("evidence", ())),
            joined_at=_time(data["joined_at"]),
            cleared_at=_opt_time(data.get("cleared_at")),
            source=data.get("source", default_source),
        )


@dataclass(slots=True)
class Incident:
    """One incident. The engine owns and changes it; callers read it (or its ``to_dict``).

    ``clocks`` are the incident's SLA clocks, running or stopped (by the response, by the
    resolution); ``response_due``/``update_due``/``repair_due`` follow from them. ``fired`` holds
    the warnings and breaches already raised, ``breaches`` every target missed (each once).
    """

    number: int
    customer: str
    automatic: bool
    priority: Priority
    status: IncidentStatus
    opened_at: datetime
    title: str = ""
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: ResolvedBy | None = None
    clocks: dict[ClockName, SlaClock] = field(default_factory=dict)
    fired: set[tuple[ClockName, TimerEventKind]] = field(default_factory=set)
    breaches: list[ClockName] = field(default_factory=list)
    scope: dict[ConditionKey, ScopeEntry] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    # Keys (in ``scope``) of the conditions a person's forced resolve forgot while they held and
    # that have not come back since: a new incident they open names this one, across restarts.
    forgotten: list[ConditionKey] = field(default_factory=list)

    @property
    def response_due(self) -> datetime | None:
        return self._due(ClockName.RESPONSE)

    @property
    def update_due(self) -> datetime | None:
        return self._due(ClockName.UPDATE)

    @property
    def repair_due(self) -> datetime | None:
        return self._due(ClockName.REPAIR)

    def _due(self, name: ClockName) -> datetime | None:
        clock = self.clocks.get(name)
        return None if clock is None else clock.due

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    def active_scope(self) -> list[ScopeEntry]:
        return [entry for entry in self.scope.values() if entry.cleared_at is None]

    def note(self, at: datetime, kind: str, detail: str, actor: str | None = None) -> None:
        self.timeline.append(TimelineEntry(at=at, kind=kind, detail=detail, actor=actor))

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "customer": self.customer,
            "automatic": self.automatic,
            "priority": int(self.priority),
            "status": self.status.value,
            "title": self.title,
            "opened_at": _iso(self.opened_at),
            "acknowledged_at": _iso(self.acknowledged_at),
            "resolved_at": _iso(self.resolved_at),
            "resolved_by": None if self.resolved_by is None else self.resolved_by.value,
            "response_due": _iso(self.response_due),
            "update_due": _iso(self.update_due),
            "repair_due": _iso(self.repair_due),
            "breaches": [name.value for name in self.breaches],
            "clocks": [
                {
                    "name": clock.name.value,
                    "started_at": _iso(clock.started_at),
                    "warn_at": _iso(clock.warn_at),
                    "due": _iso(clock.due),
                    "stopped_at": _iso(clock.stopped_at),
                }
                for clock in self.clocks.values()
            ],
            "fired": sorted([name.value, kind.value] for name, kind in self.fired),
            "scope": [entry.to_dict() for entry in self.scope.values()],
            "timeline": [entry.to_dict() for entry in self.timeline],
            "forgotten": [
                {
                    "service": key.service.value,
                    "location": key.location,
                    "user": key.user,
                    "rule": key.rule.value,
                    "source": key.source,
                }
                for key in self.forgotten
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        customer = data["customer"]
        clocks = {}
        for item in data.get("clocks", ()):
            clock = SlaClock(
                name=ClockName(item["name"]),
                started_at=_time(item["started_at"]),
                warn_at=_time(item["warn_at"]),
                due=_time(item["due"]),
                stopped_at=_opt_time(item.get("stopped_at")),
            )
            clocks[clock.name] = clock
        for name in ClockName:  # saved before stopped clocks were kept: only their due times
            due = _opt_time(data.get(f"{name.value}_due"))
            if name not in clocks and due is not None:
                clocks[name] = SlaClock(name, due, due, due, stopped_at=due)
        scope = {}
        for item in data.get("scope", ()):
            entry = ScopeEntry.from_dict(customer, item)
            scope[entry.key] = entry
        resolved_by = data.get("resolved_by")
        return cls(
            number=int(data["number"]),
            customer=customer,
            automatic=bool(data["automatic"]),
            priority=Priority(data["priority"]),
            status=IncidentStatus(data["status"]),
            title=data.get("title", ""),
            opened_at=_time(data["opened_at"]),
            acknowledged_at=_opt_time(data.get("acknowledged_at")),
            resolved_at=_opt_time(data.get("resolved_at")),
            resolved_by=None if resolved_by is None else ResolvedBy(resolved_by),
            clocks=clocks,
            fired={(ClockName(n), TimerEventKind(k)) for n, k in data.get("fired", ())},
            breaches=[ClockName(name) for name in data.get("breaches", ())],
            scope=scope,
            timeline=[TimelineEntry.from_dict(item) for item in data.get("timeline", ())],
            forgotten=[  # saved before the link survived restarts: none
                ConditionKey(
                    customer,
                    Service(item["service"]),
                    item["location"],
                    item["user"],
                    Rule(item["rule"]),
                    item["source"],
                )
                for item in data.get("forgotten", ())
            ],
        )


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return at


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else _time(text)
