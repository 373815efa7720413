"""The values that cross the storage boundary: plain frozen dataclasses.

The SQLModel table classes stay inside ``ctiwatch.storage``; callers only ever see these.
Every datetime here is timezone-aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from classifier.observation import Service
from incidents.maintenance import MaintenanceWindow
from sla.priority import Priority

IncidentStatus = Literal["open", "resolved"]
Channel = Literal["email", "sms", "voice"]
OutboxStatus = Literal["pending", "claimed", "sent", "failed"]
AgentStatus = Literal["online", "offline"]
Resolution = Literal["minute", "hour"]

INCIDENT_STATUSES: tuple[IncidentStatus, ...] = ("open", "resolved")
CHANNELS: tuple[Channel, ...] = ("email", "sms", "voice")
OUTBOX_STATUSES: tuple[OutboxStatus, ...] = ("pending", "claimed", "sent", "failed")
AGENT_STATUSES: tuple[AgentStatus, ...] = ("online", "offline")

# Upper bounds (ms) of the latency histogram kept in every rollup; the last bucket is open.
# Log-ish spacing: fine where CloudCTI answers normally (50-500 ms), coarse in the tail.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, math.inf,
)  # fmt: skip


def latency_bucket(latency_ms: float) -> int:
    """Index of the histogram bucket ``latency_ms`` falls in (bucket i holds <= bound i)."""
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms <= bound:
            return index
    return len(LATENCY_BOUNDS_MS) - 1


# --- probe results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallCounts:
    """Calls (answered results with a recognition verdict) and misses over a period."""

    calls: int
    misses: int

    @property
    def recognised(self) -> int:
        return self.calls - self.misses

    @property
    def rate(self) -> float | None:
        """Share of calls recognised, ``None`` when there were no calls."""
        return self.recognised / self.calls if self.calls else None


@dataclass(frozen=True, slots=True)
class Rollup:
    """Aggregate of the results of one target in one minute or hour bucket.

    ``count`` results, of which ``failures`` were not ok; ``calls`` had a recognition verdict
    and ``misses`` of those were unrecognised. Latency statistics cover the answered
    (ok) results only: ``answered = count - failures``. ``histogram[i]`` counts answered
    results with latency in ``(LATENCY_BOUNDS_MS[i-1], LATENCY_BOUNDS_MS[i]]``.
    """

    bucket: datetime
    resolution: Resolution
    service: Service
    customer: str
    location: str
    user: str
    count: int
    failures: int
    calls: int
    misses: int
    latency_sum_ms: float
    latency_max_ms: float
    histogram: tuple[int, ...]

    @property
    def answered(self) -> int:
        return self.count - self.failures

    @property
    def latency_p50_ms(self) -> float | None:
        return self.latency_percentile(0.50)

    @property
    def latency_p95_ms(self) -> float | None:
        return self.latency_percentile(0.95)

    @property
    def latency_mean_ms(self) -> float | None:
        return self.latency_sum_ms / self.answered if self.answered else None

    def latency_percentile(self, q: float) -> float | None:
        return histogram_percentile(self.histogram, q, self.latency_max_ms)


def histogram_percentile(histogram: Sequence[int], q: float, maximum: float) -> float | None:
    """The ``q`` quantile (0..1) from bucket counts, interpolated linearly inside its bucket
    (as Prometheus' ``histogram_quantile`` does) and never above the observed ``maximum``."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, not {q}")
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            upper = min(LATENCY_BOUNDS_MS[index], maximum)
            if upper <= lower:
                return maximum
            return min(lower + (upper - lower) * (rank - seen) / count, maximum)
        seen += count
    return maximum


def combine_rollups(rollups: Iterable[Rollup]) -> Rollup | None:
    """Sum several rollups into one (bucket, target and resolution of the first; the latency
    histogram merges exactly, which is why rollups keep a histogram and not percentiles)."""
    items = list(rollups)
    if not items:
        return None
    first = items[0]
    histogram = [0] * len(LATENCY_BOUNDS_MS)
    for item in items:
        for index, count in enumerate(item.histogram):
            histogram[index] += count
    return Rollup(
        bucket=min(item.bucket for item in items),
        resolution=first.resolution,
        service=first.service,
        customer=first.customer,
        location=first.location,
        user=first.user,
        count=sum(item.count for item in items),
        failures=sum(item.failures for item in items),
        calls=sum(item.calls for item in items),
        misses=sum(item.misses for item in items),
        latency_sum_ms=sum(item.latency_sum_ms for item in items),
        latency_max_ms=max(item.latency_max_ms for item in items),
        histogram=tuple(histogram),
    )


# --- incidents -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeItem:
    """One condition in an incident's scope (``user`` is ``None`` for a whole location)."""

    service: Service
    location: str
    user: str | None
    priority: Priority

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service.value,
            "location": self.location,
            "user": self.user,
            "priority": int(self.priority),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScopeItem:
        return cls(
            service=Service(data["service"]),
            location=str(data["location"]),
            user=None if data.get("user") is None else str(data["user"]),
            priority=Priority(int(data["priority"])),
        )


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident as stored. ``state`` is the incident engine's own snapshot (opaque here)."""

    number: int
    customer: str
    automatic: bool
    priority: Priority
    status: IncidentStatus
    title: str
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    response_due: datetime | None = None
    update_due: datetime | None = None
    repair_due: datetime | None = None
    breaches: tuple[str, ...] = ()
    scope: tuple[ScopeItem, ...] = ()
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's timeline: what happened, when, why, and who did it."""

    incident_number: int
    at: datetime
    kind: str
    detail: str
    actor: str = "ctiwatch"


# --- outbox ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to send. Build one with the first fields; the store fills in the rest.

    ``not_before`` defaults to ``created_at``. ``idempotency_key`` is unique: enqueueing the
    same key twice stores one row, and senders pass it to the provider so a resend after a
    crash is not a second message.
    """

    idempotency_key: str
    channel: Channel
    recipient: str
    kind: str
    body: str
    created_at: datetime
    subject: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    incident_number: int | None = None
    not_before: datetime | None = None
    id: int | None = None
    status: OutboxStatus = "pending"
    claimed_by: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    provider_id: str | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    failed_at: datetime | None = None


# --- maintenance and agents ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    """An announced maintenance window as stored, ``starts_at <= t < ends_at``: who announced
    it, and who cancelled it when (a cancelled window is kept as history and suppresses nothing).

    An empty ``services`` / ``customers`` / ``locations`` means "all of them". What it covers is
    :class:`incidents.maintenance.MaintenanceWindow`'s rule (:attr:`window`).
    """

    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    services: tuple[str, ...] = ()
    customers: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    id: int | None = None
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    # A recurring window: its RFC 5545 rule and every occurrence it was judged by (UTC; the
    # first is ``starts_at``..``ends_at``). Empty: the one window.
    recurrence: str | None = None
    occurrences: tuple[tuple[datetime, datetime], ...] = ()
    emergency: bool = False
    justification: str = ""
    revision: int = 1  # the number of its latest revision (scheduled is 1)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def spans(self) -> tuple[tuple[datetime, datetime], ...]:
        """Every occurrence ``(start, end)``: the window itself when it does not recur."""
        return self.occurrences or ((self.starts_at, self.ends_at),)

    @property
    def series_ends_at(self) -> datetime:
        return max(end for _, end in self.spans)

    @property
    def window(self) -> MaintenanceWindow:
        """The (first) window as the incident engine and the status page read it."""
        return self.windows[0]

    @property
    def windows(self) -> list[MaintenanceWindow]:
        """Every occurrence as the incident engine and the status page read it."""
        return [
            MaintenanceWindow(
                start=start,
                end=end,
                services=frozenset(Service(s) for s in self.services) if self.services else None,
                customers=frozenset(self.customers) if self.customers else None,
                locations=frozenset(self.locations) if self.locations else None,
                reason=self.reason,
                emergency=self.emergency,
                justification=self.justification,
            )
            for start, end in self.spans
        ]

    def as_before(self) -> dict[str, Any]:
        """The window's own fields as a revision keeps them (``before``): JSON values."""
        return {
            "start": self.starts_at.isoformat(),
            "end": self.ends_at.isoformat(),
            "services": list(self.services),
            "customers": list(self.customers),
            "locations": list(self.locations),
            "reason": self.reason,
            "recurrence": self.recurrence,
            "emergency": self.emergency,
            "justification": self.justification,
        }


MaintenanceAction = Literal["scheduled", "changed", "cancelled"]


@dataclass(frozen=True, slots=True)
class MaintenanceRevision:
    """One step of a window's history: who did what when and why; ``before`` is the window's
    fields as they were (:meth:`MaintenanceRecord.as_before`), None when it was scheduled."""

    window_id: int
    revision: int
    action: MaintenanceAction
    at: datetime
    actor: str
    reason: str
    before: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A remote probe agent as last heard from."""

    name: str
    last_seen: datetime
    status: AgentStatus = "online"
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input the database would not take, parked with the reason instead of retried for
    ever. ``payload`` is its JSON text (NUL and other control characters escaped)."""

    parked_at: datetime
    source: str  # where it came from, e.g. "mqtt"
    key: str  # what names it, e.g. the result id
    reason: str
    payload: str
    id: int | None = None
