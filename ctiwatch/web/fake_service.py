"""An in-memory :class:`~ctiwatch.web.service.ConsoleService`: for the web tests, the demo
runner, and as a reference for the real implementation's behaviour (which errors, when).

It keeps its own simplified rules: deadlines are fixed offsets in wall time (not support
hours) and support hours are Monday to Friday 08:30-17:00 local without holidays. The real
service uses the SLA calendar for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from ctiwatch.clock import Clock
from ctiwatch.web.service import (
    SERVICES,
    AgentState,
    AgentView,
    Breach,
    CustomerStatus,
    IncidentDetail,
    IncidentState,
    IncidentSummary,
    LocationStatus,
    MaintenanceState,
    MaintenanceView,
    MqttState,
    MqttView,
    ScopeEntry,
    ServiceError,
    ServiceState,
    ServiceTile,
    StatusView,
    TimelineEntry,
    check_customer,
    check_priority_change,
    check_status_filter,
    check_window,
    incident_not_found,
    incident_resolved,
    required_text,
    window_state,
)

_RESPONSE = {
    1: timedelta(hours=4),
    2: timedelta(hours=8),
    3: timedelta(days=1),
    4: timedelta(days=1),
}
_UPDATE = {1: timedelta(hours=4), 2: timedelta(hours=8)}
_REPAIR = {2: timedelta(days=2)}


@dataclass
class _Location:
    id: str
    name: str
    tiles: dict[str, ServiceTile] = field(default_factory=dict)


@dataclass
class _Customer:
    id: str
    name: str
    locations: dict[str, _Location] = field(default_factory=dict)


@dataclass
class _Incident:
    number: int
    customer: str
    title: str
    priority: int
    opened_at: datetime
    scope: list[ScopeEntry]
    status: IncidentState = "open"
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: Literal["auto", "person"] | None = None
    response_due: datetime | None = None
    update_due: datetime | None = None
    repair_due: datetime | None = None
    breaches: list[Breach] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)


@dataclass
class _Window:
    id: int
    start: datetime
    end: datetime
    services: tuple[str, ...] | None
    customers: tuple[str, ...] | None
    reason: str
    created_by: str
    cancelled_by: str | None = None


class FakeService:
    """A ConsoleService held in memory; the ``add_*`` / ``set_*`` methods arrange a scene."""

    def __init__(self, clock: Clock, tz: str = "Europe/Amsterdam") -> None:
        self._clock = clock
        self._tz = ZoneInfo(tz)
        self._customers: dict[str, _Customer] = {}
        self._agents: dict[str, AgentView] = {}
        self._mqtt: MqttView | None = None
        self._incidents: dict[int, _Incident] = {}
        self._windows: dict[int, _Window] = {}

    # --- arranging ---------------------------------------------------------------------------

    def add_customer(self, id: str, name: str, locations: dict[str, str]) -> None:
        """A customer with ``locations`` (id -> name); every service starts ``unknown``."""
        customer = _Customer(id, name)
        for loc_id, loc_name in locations.items():
            location = _Location(loc_id, loc_name)
            for service in SERVICES:
                location.tiles[service] = ServiceTile(service, "unknown", None, None, 0, None)
            customer.locations[loc_id] = location
        self._customers[id] = customer

    def set_tile(
        self,
        customer: str,
        location: str,
        service: str,
        state: ServiceState,
        *,
        recognition_rate: float | None = None,
        calls: int = 0,
        latency_p95_ms: float | None = None,
        last_probe_at: datetime | None = None,
        detail: str = "",
    ) -> None:
        tiles = self._customers[customer].locations[location].tiles
        tiles[service] = ServiceTile(
            service,
            state,
            last_probe_at or self._clock.now(),
            recognition_rate,
            calls,
            latency_p95_ms,
            detail=detail,
        )

    def set_agent(
        self,
        name: str,
        status: AgentState,
        last_seen: datetime | None,
        *locations: str,
        results_received: int = 0,
        reason: str = "",
    ) -> None:
        """An agent probing ``locations``; ``reason`` says why it is offline or stale."""
        self._agents[name] = AgentView(
            name,
            status,
            last_seen,
            ", ".join(locations),
            results_received=results_received,
            locations=locations,
            reason=reason,
        )

    def set_mqtt(self, broker: str, state: MqttState, detail: str = "") -> None:
        """The MQTT broker's state on the status page; none is shown until this is called."""
        self._mqtt = MqttView(broker, state, detail)

    def open_incident(
        self,
        customer: str,
        priority: int,
        title: str,
        scope: list[ScopeEntry],
        opened_at: datetime | None = None,
    ) -> int:
        """What the incident engine does when a condition starts: a new automatic incident."""
        at = opened_at or self._clock.now()
        number = max(self._incidents, default=0) + 1
        incident = _Incident(number, customer, title, priority, at, list(scope))
        self._set_deadlines(incident, at)
        why = "; ".join(_describe_scope(entry) for entry in scope)
        incident.timeline.append(TimelineEntry(at, "opened", f"P{priority} {title}: {why}"))
        incident.timeline.append(
            TimelineEntry(at, "alert_sent", "e-mail report to support@cloudcti.nl")
        )
        self._incidents[number] = incident
        return number

    def resolve_automatically(self, number: int, at: datetime, detail: str) -> None:
        """What the incident engine does when every condition cleared for the recovery period."""
        incident = self._incidents[number]
        incident.status = "resolved"
        incident.resolved_at = at
        incident.resolved_by = "auto"
        incident.timeline.append(TimelineEntry(at, "resolved", detail))

    def add_window(
        self,
        start: datetime,
        end: datetime,
        services: list[str] | None,
        customers: list[str] | None,
        reason: str,
        created_by: str,
    ) -> int:
        """A window as stored, without the support-hours rule (e.g. one already running)."""
        window_id = max(self._windows, default=0) + 1
        self._windows[window_id] = _Window(
            window_id,
            start,
            end,
            tuple(services) if services else None,
            tuple(customers) if customers else None,
            reason,
            created_by,
        )
        return window_id

    def mark_breach(self, number: int, breach: Breach) -> None:
        incident = self._incidents[number]
        incident.breaches.append(breach)
        incident.timeline.append(
            TimelineEntry(self._clock.now(), f"{breach}_breach", f"{breach} target missed")
        )

    # --- ConsoleService ----------------------------------------------------------------------

    async def status(self) -> StatusView:
        now = self._clock.now()
        open_incidents = [i for i in self._incidents.values() if i.status != "resolved"]
        active = [w for w in self._windows.values() if self._state(w, now) == "active"]
        customers = []
        for customer in self._customers.values():
            incident = next((i for i in open_incidents if i.customer == customer.id), None)
            locations = []
            for location in customer.locations.values():
                tiles = []
                for tile in location.tiles.values():
                    if any(_covers(w, customer.id, tile.service) for w in active):
                        tile = replace(tile, state="maintenance")
                    in_scope = incident is not None and any(
                        e.service == tile.service and e.location == location.id
                        for e in incident.scope
                    )
                    if incident is not None and in_scope:
                        tile = replace(
                            tile,
                            incident_number=incident.number,
                            incident_priority=incident.priority,
                        )
                    tiles.append(tile)
                locations.append(LocationStatus(location.id, location.name, tuple(tiles)))
            customers.append(CustomerStatus(customer.id, customer.name, tuple(locations)))
        windows = [self._view(w, now) for w in self._windows.values()]
        return StatusView(
            generated_at=now,
            customers=tuple(customers),
            agents=tuple(self._agents.values()),
            open_incidents=tuple(
                self._summary(i) for i in sorted(open_incidents, key=lambda i: -i.number)
            ),
            maintenance=tuple(
                sorted(
                    (w for w in windows if w.state in ("active", "scheduled")),
                    key=lambda w: w.start,
                )
            ),
            mqtt=self._mqtt,
        )

    async def incidents(
        self, status: str | None, customer: str | None, limit: int
    ) -> list[IncidentSummary]:
        check_status_filter(status)
        chosen = []
        for incident in sorted(self._incidents.values(), key=lambda i: -i.number):
            if status == "active" and incident.status == "resolved":
                continue
            if status not in (None, "active") and incident.status != status:
                continue
            if customer is not None and incident.customer != customer:
                continue
            chosen.append(self._summary(incident))
        return chosen[:limit]

    async def incident(self, number: int) -> IncidentDetail | None:
        incident = self._incidents.get(number)
        if incident is None:
            return None
        return IncidentDetail(
            summary=self._summary(incident),
            scope=tuple(incident.scope),
            response_due=incident.response_due,
            update_due=incident.update_due,
            repair_due=incident.repair_due,
            timeline=tuple(incident.timeline),
        )

    async def acknowledge(self, number: int, actor: str) -> None:
        incident = self._open(number, "acknowledge")
        if incident.status == "acknowledged":
            raise ServiceError(f"incident {number} is already acknowledged", status=409)
        now = self._clock.now()
        incident.status = "acknowledged"
        incident.acknowledged_at = now
        if incident.priority in _UPDATE:
            incident.update_due = now + _UPDATE[incident.priority]
        incident.timeline.append(TimelineEntry(now, "acknowledged", "first response", actor))

    async def update(self, number: int, actor: str, text: str) -> None:
        text = required_text(text, "text")
        incident = self._open(number, "update")
        now = self._clock.now()
        if incident.priority in _UPDATE:
            incident.update_due = now + _UPDATE[incident.priority]
        incident.timeline.append(TimelineEntry(now, "updated", text, actor))

    async def change_priority(self, number: int, actor: str, priority: int, reason: str) -> None:
        reason = check_priority_change(priority, reason)
        incident = self._open(number, "change the priority of")
        if priority == incident.priority:
            raise ServiceError(f"incident {number} is already P{priority}", "priority", 409)
        now = self._clock.now()
        old = incident.priority
        incident.priority = priority
        self._set_deadlines(incident, now)
        incident.timeline.append(
            TimelineEntry(now, "priority_changed", f"P{old} → P{priority}: {reason}", actor)
        )

    async def resolve(self, number: int, actor: str) -> None:
        incident = self._open(number, "resolve")
        now = self._clock.now()
        incident.status = "resolved"
        incident.resolved_at = now
        incident.resolved_by = "person"
        incident.timeline.append(TimelineEntry(now, "resolved", "resolved by a person", actor))

    async def reopen(self, number: int, actor: str) -> None:
        incident = self._get(number)
        if incident.status != "resolved":
            raise ServiceError(f"incident {number} is not resolved", status=409)
        now = self._clock.now()
        incident.status = "open"
        incident.acknowledged_at = None
        incident.resolved_at = None
        incident.resolved_by = None
        self._set_deadlines(incident, now)
        incident.timeline.append(TimelineEntry(now, "reopened", "reopened", actor))

    async def open_question(self, customer: str, actor: str, text: str) -> int:
        check_customer(customer, self._customers)
        text = required_text(text, "text")
        now = self._clock.now()
        title = text.splitlines()[0][:80]
        number = max(self._incidents, default=0) + 1
        incident = _Incident(number, customer, title, 4, now, [])
        self._set_deadlines(incident, now)
        incident.timeline.append(TimelineEntry(now, "opened", f"question: {text}", actor))
        self._incidents[number] = incident
        return number

    async def maintenance(self) -> list[MaintenanceView]:
        now = self._clock.now()
        return [self._view(w, now) for w in sorted(self._windows.values(), key=lambda w: -w.id)]

    async def schedule_maintenance(
        self,
        start: datetime,
        end: datetime,
        services: list[str] | None,
        customers: list[str] | None,
        reason: str,
        actor: str,
    ) -> MaintenanceView:
        now = self._clock.now()
        reason = check_window(
            start, end, services, customers, reason, now=now, known_customers=self._customers
        )
        clash = self._first_support_hours(start, end)
        if clash is not None:
            raise ServiceError(
                "maintenance must lie outside support hours (Mon-Fri 08:30-17:00): "
                f"the window overlaps {clash:%a %d %b %H:%M}",
                "start",
            )
        window_id = self.add_window(start, end, services, customers, reason, actor)
        return self._view(self._windows[window_id], now)

    async def cancel_maintenance(self, id: int, actor: str) -> None:
        window = self._windows.get(id)
        if window is None:
            raise ServiceError(f"maintenance window {id} does not exist", status=404)
        state = self._state(window, self._clock.now())
        if state in ("ended", "cancelled"):
            raise ServiceError(f"maintenance window {id} has {state}", status=409)
        window.cancelled_by = actor

    # --- helpers -----------------------------------------------------------------------------

    def _get(self, number: int) -> _Incident:
        incident = self._incidents.get(number)
        if incident is None:
            raise incident_not_found(number)
        return incident

    def _open(self, number: int, verb: str) -> _Incident:
        incident = self._get(number)
        if incident.status == "resolved":
            raise incident_resolved(number, verb)
        return incident

    def _set_deadlines(self, incident: _Incident, start: datetime) -> None:
        priority = incident.priority
        incident.response_due = (
            start + _RESPONSE[priority] if incident.acknowledged_at is None else None
        )
        incident.update_due = start + _UPDATE[priority] if priority in _UPDATE else None
        incident.repair_due = start + _REPAIR[priority] if priority in _REPAIR else None

    def _summary(self, incident: _Incident) -> IncidentSummary:
        customer = self._customers.get(incident.customer)
        return IncidentSummary(
            number=incident.number,
            customer=incident.customer,
            customer_name=customer.name if customer else incident.customer,
            title=incident.title,
            status=incident.status,
            priority=incident.priority,
            opened_at=incident.opened_at,
            acknowledged_at=incident.acknowledged_at,
            resolved_at=incident.resolved_at,
            resolved_by=incident.resolved_by,
            breaches=tuple(incident.breaches),
        )

    @staticmethod
    def _state(window: _Window, now: datetime) -> MaintenanceState:
        cancelled = window.cancelled_by is not None
        return window_state(window.start, window.end, now, cancelled=cancelled)

    def _view(self, window: _Window, now: datetime) -> MaintenanceView:
        return MaintenanceView(
            id=window.id,
            start=window.start,
            end=window.end,
            services=window.services,
            customers=window.customers,
            reason=window.reason,
            created_by=window.created_by,
            state=self._state(window, now),
            cancelled_by=window.cancelled_by,
        )

    def _first_support_hours(self, start: datetime, end: datetime) -> datetime | None:
        """The first support-hours instant inside [start, end), or None."""
        day = start.astimezone(self._tz).date()
        last = end.astimezone(self._tz).date()
        while day <= last:
            if day.weekday() < 5:
                opens = datetime.combine(day, time(8, 30), self._tz)
                closes = datetime.combine(day, time(17, 0), self._tz)
                if start < closes and opens < end:
                    return max(start, opens).astimezone(self._tz)
            day += timedelta(days=1)
        return None


def _covers(window: _Window, customer: str, service: str) -> bool:
    return (window.customers is None or customer in window.customers) and (
        window.services is None or service in window.services
    )


def _describe_scope(entry: ScopeEntry) -> str:
    who = entry.user if entry.user is not None else "all users"
    return f"{entry.service} at {entry.location} ({who}): {entry.condition or 'condition'}"


def example_service(clock: Clock) -> FakeService:
    """A small fixed scene for tests, relative to ``clock.now()``: ACME is down at Amsterdam
    (incident 1, P1, opened 30 minutes ago), Globex is fine, incident 2 (Globex, P3) was
    resolved automatically a day ago; the MQTT broker connected and two agents (one stale),
    no maintenance."""
    now = clock.now()
    fake = FakeService(clock)
    fake.add_customer("acme", "ACME B.V.", {"acme-ams": "Amsterdam"})
    fake.add_customer("globex", "Globex Nederland", {"globex-utr": "Utrecht"})
    probed = now - timedelta(seconds=42)
    fake.set_tile("acme", "acme-ams", "click2dial", "down", last_probe_at=probed,
                  detail="all users: 3 failed rounds")  # fmt: skip
    fake.set_tile("acme", "acme-ams", "crm", "ok", recognition_rate=0.991, calls=112,
                  latency_p95_ms=212.0, last_probe_at=probed)  # fmt: skip
    fake.set_tile("globex", "globex-utr", "click2dial", "ok", latency_p95_ms=301.0)
    fake.set_tile("globex", "globex-utr", "crm", "ok", recognition_rate=0.95, calls=20)
    fake.set_mqtt("127.0.0.1:1883", "connected")
    fake.set_agent("agent-ams-1", "online", now - timedelta(seconds=8), "acme-ams",
                   results_received=1284)  # fmt: skip
    fake.set_agent("agent-utr-1", "stale", now - timedelta(minutes=4), "globex-utr",
                   results_received=96, reason="no report for 4m")  # fmt: skip
    fake.open_incident(
        "acme",
        1,
        "Click2Dial unavailable at Amsterdam",
        [ScopeEntry("click2dial", "acme-ams", None, 1, "3 consecutive failed rounds")],
        opened_at=now - timedelta(minutes=30),
    )
    old = fake.open_incident(
        "globex",
        3,
        "CRM sometimes does not recognise calls",
        [ScopeEntry("crm", "globex-utr", "bob", 3, "4 unrecognised calls in 24h")],
        opened_at=now - timedelta(days=2),
    )
    fake.resolve_automatically(old, now - timedelta(days=1), "every condition cleared")
    return fake


def demo_service(clock: Clock) -> FakeService:
    """A small scene: three customers, an outage (P1), a degraded CRM (P2), a question,
    a resolved incident, three agents (online, stale, offline) behind a connected MQTT broker
    and a maintenance window tonight."""
    now = clock.now()
    fake = FakeService(clock)
    fake.add_customer("acme", "ACME B.V.", {"acme-ams": "Amsterdam", "acme-rtm": "Rotterdam"})
    fake.add_customer("globex", "Globex Nederland", {"globex-utr": "Utrecht"})
    fake.add_customer("initech", "Initech", {"initech-ehv": "Eindhoven"})
    recent = now - timedelta(seconds=42)
    fake.set_tile("acme", "acme-ams", "click2dial", "down", calls=0, last_probe_at=recent,
                  detail="all users: 5 failed rounds")  # fmt: skip
    fake.set_tile("acme", "acme-ams", "crm", "ok", recognition_rate=0.991, calls=112,
                  latency_p95_ms=212.0, last_probe_at=recent)  # fmt: skip
    fake.set_tile("acme", "acme-rtm", "click2dial", "ok", recognition_rate=None, calls=0,
                  latency_p95_ms=188.0, last_probe_at=recent)  # fmt: skip
    fake.set_tile("acme", "acme-rtm", "crm", "ok", recognition_rate=0.984, calls=61,
                  latency_p95_ms=240.0, last_probe_at=recent)  # fmt: skip
    fake.set_tile("globex", "globex-utr", "click2dial", "ok", latency_p95_ms=301.0,
                  last_probe_at=recent)  # fmt: skip
    fake.set_tile("globex", "globex-utr", "crm", "degraded", recognition_rate=0.82, calls=44,
                  latency_p95_ms=1450.0, last_probe_at=recent,
                  detail="recognition 82% < 90%")  # fmt: skip
    fake.set_tile("initech", "initech-ehv", "click2dial", "ok", latency_p95_ms=175.0,
                  last_probe_at=recent)  # fmt: skip
    fake.set_tile("initech", "initech-ehv", "crm", "ok", recognition_rate=1.0, calls=23,
                  latency_p95_ms=198.0, last_probe_at=recent)  # fmt: skip
    fake.set_mqtt("mqtt.ctiwatch.internal:1883", "connected")
    fake.set_agent("agent-ams-1", "online", now - timedelta(seconds=8), "acme-ams", "acme-rtm",
                   results_received=25_318)  # fmt: skip
    fake.set_agent("agent-utr-1", "stale", now - timedelta(minutes=4), "globex-utr",
                   results_received=4_102, reason="no report for 4m")  # fmt: skip
    fake.set_agent("agent-ehv-1", "offline", now - timedelta(hours=3), "initech-ehv",
                   results_received=9_977, reason="connection lost")  # fmt: skip
    resolved = fake.open_incident(
        "initech",
        3,
        "CRM sometimes does not recognise calls",
        [ScopeEntry("crm", "initech-ehv", "dave", 3, "4 unrecognised calls in 24h")],
        opened_at=now - timedelta(days=2),
    )
    fake.resolve_automatically(resolved, now - timedelta(days=1), "every condition cleared")
    fake.open_incident(
        "acme",
        1,
        "Click2Dial unavailable at Amsterdam",
        [ScopeEntry("click2dial", "acme-ams", None, 1, "3 consecutive failed rounds")],
        opened_at=now - timedelta(minutes=35),
    )
    fake.open_incident(
        "globex",
        2,
        "CRM recognition reduced at Utrecht",
        [ScopeEntry("crm", "globex-utr", None, 2, "recognition 82% < 90% over 1h, 44 calls")],
        opened_at=now - timedelta(hours=5),
    )
    tonight = datetime.combine(now.astimezone(fake._tz).date(), time(22, 0), fake._tz)
    if tonight <= now:
        tonight += timedelta(days=1)
    fake.add_window(tonight, tonight + timedelta(hours=3), ["crm"], None, "CRM upgrade", "Demo")
    return fake
