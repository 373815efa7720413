"""The one interface between the web layer and the rest of ctiwatch.

The web layer renders and validates; everything it shows comes from a :class:`ConsoleService`
as plain frozen view models, and every action goes through it. The composition root
implements the protocol over storage and the incident engine (:mod:`ctiwatch.console`); the tests
run the web on that real service.

Times in the view models are timezone-aware (UTC is fine); the web shows them in local time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from classifier.observation import CALLS, CENTRAL, Service
from ctiwatch.errors import Refused
from sla.kpi import KpiReport, MonthError, parse_month
from sla.timers import due_next
from sla.words import unset_target

ServiceState = Literal["ok", "degraded", "down", "maintenance", "unknown"]
AgentState = Literal["online", "offline", "stale"]
MqttState = Literal["connected", "connecting", "unreachable", "disabled"]
IncidentState = Literal["open", "acknowledged", "resolved"]
MaintenanceState = Literal["scheduled", "active", "ended", "cancelled"]
Breach = Literal["response", "update", "repair"]

SERVICES: tuple[str, ...] = tuple(s.value for s in Service)
SERVICE_STATES: tuple[ServiceState, ...] = ("ok", "degraded", "down", "maintenance", "unknown")
MQTT_STATES: tuple[MqttState, ...] = ("connected", "connecting", "unreachable", "disabled")
INCIDENT_STATES: tuple[IncidentState, ...] = ("open", "acknowledged", "resolved")
# Values of the ``status`` filter of :meth:`ConsoleService.incidents`: an incident state, or
# ``active`` for every incident that is not resolved (open or acknowledged).
INCIDENT_FILTERS: tuple[str, ...] = ("active", *INCIDENT_STATES)
MAX_MAINTENANCE = timedelta(days=7)


class ServiceError(Refused):
    """An action the service refuses, in the user's words.

    ``status`` is the HTTP status the web answers with: 404 unknown incident or window,
    409 not possible in the current state (e.g. acknowledging a resolved incident),
    400 bad input, with ``field`` naming the input at fault.
    """

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status
        # Seconds after which trying again may succeed (a 503 during a takeover): Retry-After.
        self.retry_after: int | None = None


# --- the rules every ConsoleService applies to its input, in the same words ---------------------


MAX_TEXT = 10_000  # characters of a person's text (an update, a reason, a question)


def required_text(value: str, field: str) -> str:
    """``value`` without surrounding blanks; refused (400, ``field``) when nothing is left, when
    it holds a NUL or other control character (no database stores those), or is too long."""
    text = value.strip()
    if not text:
        raise ServiceError(f"{field} must not be empty", field)
    if len(text) > MAX_TEXT:
        raise ServiceError(f"{field} must be at most {MAX_TEXT} characters", field)
    if any(ord(c) < 32 and c not in "\r\n\t" for c in text):
        raise ServiceError(f"{field} must not contain control characters", field)
    return text


def check_month(month: str) -> str:
    """``month`` as a local month ``YYYY-MM`` (400, field ``month``, otherwise): the rule and
    the words of ``ctiwatch report kpi --month``."""
    try:
        return parse_month(month)
    except MonthError as exc:
        raise ServiceError(f"month: {exc}", "month") from None


def check_status_filter(status: str | None) -> None:
    """``status`` is None or one of :data:`INCIDENT_FILTERS`."""
    if status is not None and status not in INCIDENT_FILTERS:
        raise ServiceError(f"unknown status {status!r}", "status")


def check_priority_change(priority: int, reason: str) -> str:
    """A person's new priority and its reason; returns the reason stripped."""
    if priority not in (1, 2, 3, 4):
        raise ServiceError("priority must be 1, 2, 3 or 4", "priority")
    return required_text(reason, "reason")


def check_customer(customer: str, known: Collection[str], field: str = "customer") -> None:
    if customer not in known:
        raise ServiceError(f"unknown customer {customer!r}", field)


@dataclass(frozen=True, slots=True)
class WindowRequest:
    """A maintenance window as a person asks for it: a new one, or what a change makes of
    one. ``services``, ``customers`` and ``locations`` None (or empty) mean every one;
    ``recurrence`` is an RFC 5545 RRULE; an ``emergency`` needs a ``justification``.
    The console, the API and the CLI (through the API) all send this to the service, which
    judges it once (:func:`check_window`, then the SLA's rules)."""

    start: datetime
    end: datetime
    services: Sequence[str] | None
    customers: Sequence[str] | None
    reason: str
    locations: Sequence[str] | None = None
    recurrence: str | None = None
    emergency: bool = False
    justification: str = ""


def check_window(
    window: WindowRequest,
    *,
    now: datetime,
    known_customers: Collection[str],
    known_locations: Collection[str] = (),
) -> str:
    """A maintenance window a person asks for, all but the SLA's rules (support hours, notice,
    emergency, recurrence: :func:`incidents.maintenance.judge_window`, the service knows its
    calendar); returns the reason stripped."""
    start, end = window.start, window.end
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ServiceError(f"{name} must have a time zone offset", name)
    if end <= start:
        raise ServiceError("end must be after start", "end")
    if end <= now:
        raise ServiceError("the window has already ended", "end")
    if end - start > MAX_MAINTENANCE:
        raise ServiceError("a window may last at most 7 days", "end")
    for service in window.services or ():
        if service not in SERVICES:
            raise ServiceError(f"unknown service {service!r}", "services")
    for customer in window.customers or ():
        check_customer(customer, known_customers, "customers")
    for location in window.locations or ():
        if location not in known_locations:
            raise ServiceError(f"unknown location {location!r}", "locations")
    return required_text(window.reason, "reason")


def window_state(
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    cancelled: bool = False,
    spans: Sequence[tuple[datetime, datetime]] = (),
) -> MaintenanceState:
    """``active`` inside an occurrence (``spans``, or ``start``..``end``), ``ended`` after the
    last, ``scheduled`` before the first and between occurrences."""
    if cancelled:
        return "cancelled"
    spans = spans or ((start, end),)
    if any(a <= now < b for a, b in spans):
        return "active"
    return "ended" if now >= max(b for _, b in spans) else "scheduled"


def check_resolve(reason: str, force: bool) -> str:
    """A person's resolve: forcing it (conditions still hold) needs a reason for the timeline;
    returns the reason stripped."""
    return required_text(reason, "reason") if force else reason.strip()


def conditions_still_hold(number: int, holding: Sequence[str]) -> ServiceError:
    """Refusal (409, field ``force``) of a resolve without force while conditions hold."""
    return ServiceError(
        f"conditions in the scope of incident {number} still hold: {'; '.join(holding)}. "
        "Resolving it anyway needs force and a reason; if they persist, a new incident opens",
        "force",
        409,
    )


def step_not_stored(verb: str) -> ServiceError:
    """503: the database did not take the change; nothing changed, the person may try again."""
    return ServiceError(
        f"could not {verb} it now: the database did not store the change, so nothing changed; "
        "try again in a moment",
        status=503,
    )


def incident_not_found(number: int) -> ServiceError:
    return ServiceError(f"incident {number} does not exist", status=404)


def incident_resolved(number: int, verb: str) -> ServiceError:
    """Refusal of an action (``verb``) a resolved incident does not take."""
    return ServiceError(f"cannot {verb} incident {number}: it is resolved", status=409)


def seen_by(source: str) -> str:
    """Who saw a condition, in words: ``seen by the central prober``, ``seen by ams-agent-1``
    (a remote probe agent), or, for the recognition and miss-count rules that count every
    source's calls together (source ``""``), ``from every source's calls``."""
    if source == CENTRAL:
        return "seen by the central prober"
    if source == CALLS:
        return "seen in the platform's call events"
    return f"seen by {source}" if source else "from every source's calls"


# --- status page ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceTile:
    """One service at one location of one customer."""

    service: str  # click2dial | crm
    state: ServiceState
    last_probe_at: datetime | None
    recognition_rate: float | None  # 0..1 over the recognition window; None when no calls
    calls: int  # calls in the recognition window (the base of the rate)
    latency_p95_ms: float | None
    incident_number: int | None = None  # the customer's open incident, if this service is in it
    incident_priority: int | None = None
    detail: str = ""  # a short why, e.g. "alice: 3 failed rounds"
    # The sources whose own series see it down here (``central``, agent ids), sorted: an
    # agent at the customer's site may see an outage the central prober does not.
    seen_down_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LocationStatus:
    id: str
    name: str
    services: tuple[ServiceTile, ...]


@dataclass(frozen=True, slots=True)
class CustomerStatus:
    id: str
    name: str
    locations: tuple[LocationStatus, ...]


@dataclass(frozen=True, slots=True)
class AgentView:
    """A remote probe agent: ``stale`` when its heartbeats stopped recently, ``offline`` after
    its last will or a long silence."""

    name: str
    status: AgentState
    last_seen: datetime | None
    location: str = ""  # where it probes, one line (``locations`` joined by ", ")
    results_received: int = 0  # results received from it since ctiwatch started
    locations: tuple[str, ...] = ()  # the locations its results were about
    reason: str = ""  # why it is offline or stale; empty when online


@dataclass(frozen=True, slots=True)
class MqttView:
    """The MQTT broker remote agents publish to, as ctiwatch's ingestion sees it.

    ``connecting`` until the first subscription, ``unreachable`` (with ``detail`` saying why)
    while it cannot connect, ``disabled`` when MQTT is off (``mqtt.enabled: false``): then no
    remote agent can report and the central prober runs every check."""

    broker: str  # host:port
    state: MqttState
    detail: str = ""  # why it is unreachable


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """An input the database refused, parked instead of retried for ever."""

    parked_at: datetime
    source: str  # "mqtt"
    key: str  # the result id
    reason: str


# --- incidents ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    number: int
    customer: str  # customer id
    customer_name: str
    title: str
    status: IncidentState
    priority: int  # 1..4
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: Literal["auto", "person"] | None = None
    breaches: tuple[Breach, ...] = ()
    # The SLA deadline due next while it is open (:func:`next_deadline`): ``response``,
    # ``update`` or ``repair`` with its time; the SLA's words for none ("best effort", "to be
    # determined"), no time; empty once resolved.
    next_deadline: str = ""
    next_due: datetime | None = None


def next_deadline(
    priority: int,
    now: datetime,
    *,
    resolved: bool,
    acknowledged: bool,
    response_due: datetime | None,
    update_due: datetime | None,
    repair_due: datetime | None,
) -> tuple[str, datetime | None]:
    """The SLA deadline an open incident meets next: the pending one (the response until it is
    acknowledged, the next update, the repair) due first from ``now`` on, or, when every one is
    overdue, the one overdue longest. None set: the SLA's word for it (``best effort``, P1's
    ``to be determined``). A resolved incident has none: ``("", None)``."""
    if resolved:
        return "", None
    found = due_next(
        (
            (due, name)
            for name, due in (
                ("response", None if acknowledged else response_due),
                ("update", update_due),
                ("repair", repair_due),
            )
            if due is not None
        ),
        now,
    )
    if found is None:
        return unset_target(priority), None
    due, name = found
    return name, due


@dataclass(frozen=True, slots=True)
class ScopeEntry:
    """One condition in an incident's scope; ``user`` is None for a whole location."""

    service: str
    location: str
    user: str | None
    priority: int
    condition: str = ""  # the rule that holds, e.g. "3 consecutive failed rounds"
    cleared: bool = False  # the condition no longer holds
    # Who saw it: ``central``, an agent's id, or "" (the calls of every source together).
    source: str = ""
    seen_by: str = ""  # the same in words (:func:`seen_by`)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # opened, scope_grew, raised, acknowledged, updated, alert_sent, resolved, ...
    detail: str
    actor: str | None = None  # a person's name; None for ctiwatch itself


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    summary: IncidentSummary
    scope: tuple[ScopeEntry, ...]
    response_due: datetime | None
    update_due: datetime | None
    repair_due: datetime | None
    timeline: tuple[TimelineEntry, ...]


# --- maintenance ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaintenanceView:
    """An announced window; ``services`` / ``customers`` None means every one."""

    id: int
    start: datetime
    end: datetime
    services: tuple[str, ...] | None
    customers: tuple[str, ...] | None
    reason: str
    created_by: str
    state: MaintenanceState
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    locations: tuple[str, ...] | None = None
    # An emergency may touch support hours and come without the minimum notice; its
    # justification is shown wherever the window is.
    emergency: bool = False
    justification: str = ""
    recurrence: str | None = None  # an RFC 5545 RRULE
    occurrences: tuple[tuple[datetime, datetime], ...] = ()  # every one, when it recurs
    revision: int = 1
    history: tuple[MaintenanceRevisionView, ...] = ()  # oldest first


@dataclass(frozen=True, slots=True)
class MaintenanceRevisionView:
    """A step of a window's history; ``before`` holds its fields as they were."""

    revision: int
    action: Literal["scheduled", "changed", "cancelled"]
    at: datetime
    actor: str
    reason: str
    before: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RecognitionRow:
    """The recognition rate over the trailing window of a customer, a location or a user
    (all its services' answered calls with a verdict)."""

    level: Literal["customer", "location", "user"]
    customer: str  # the customer's id
    name: str  # the customer's or location's display name, or the user's id
    rate: float | None  # None without calls
    calls: int
    misses: int


@dataclass(frozen=True, slots=True)
class UserTile:
    """One user's service at one location (the wall screen's tile)."""

    customer: str
    customer_name: str
    location: str
    location_name: str
    user: str
    service: str
    state: ServiceState
    recognition_rate: float | None = None


@dataclass(frozen=True, slots=True)
class StatusView:
    generated_at: datetime
    customers: tuple[CustomerStatus, ...]
    agents: tuple[AgentView, ...]
    open_incidents: tuple[IncidentSummary, ...]  # every incident that is not resolved
    maintenance: tuple[MaintenanceView, ...]  # windows that are active or scheduled
    mqtt: MqttView | None = None  # None: the service does not say (e.g. a test double)
    # The trailing window of every tile's recognition figure: the degraded rule's window, so
    # a card's figure is the one the rule judges (``sla.words.window_words``).
    recognition_window: str = "1h"
    dead_letters: tuple[DeadLetterView, ...] = ()  # the latest parked, newest first
    # Which build of the read model this is (a new number per build): the web caches what it
    # renders from a view under it. None: not cached (e.g. a test double).
    version: int | None = None
    # Views of one epoch differ only in their figures (results came in): while the next
    # view of an epoch is rendered, the web may answer with the last (FragmentCache).
    epoch: int | None = None
    # The state version (``StateVersion.value``, what ``/events`` streams) it was built at:
    # a live page that heard of a newer one asks again (its view is being built behind).
    state: int | None = None
    # The latest resolved incidents, newest first (the operators' history).
    history: tuple[IncidentSummary, ...] = ()
    # Recognition per customer, then its locations, then their users (the trailing window).
    recognition: tuple[RecognitionRow, ...] = ()
    users: tuple[UserTile, ...] = ()  # every user's every service (the wall screen)


class ConsoleService(Protocol):
    """What the console and the JSON API need. Actions raise :class:`ServiceError`."""

    async def status(self) -> StatusView: ...

    async def incidents(
        self, status: str | None, customer: str | None, limit: int
    ) -> list[IncidentSummary]:
        """Newest first. ``status`` is None or one of :data:`INCIDENT_FILTERS`."""
        ...

    async def incident(self, number: int) -> IncidentDetail | None: ...

    # Every action takes who does it (``actor``: a user's or a token's name) and from where
    # (``address``); both go on the audit line written with the change.

    async def acknowledge(self, number: int, actor: str, *, address: str = "") -> None: ...

    async def update(self, number: int, actor: str, text: str, *, address: str = "") -> None: ...

    async def change_priority(
        self, number: int, actor: str, priority: int, reason: str, *, address: str = ""
    ) -> None: ...

    async def resolve(
        self,
        number: int,
        actor: str,
        reason: str = "",
        force: bool = False,
        *,
        address: str = "",
    ) -> None:
        """Refuses (409, field ``force``) while conditions in scope hold, unless ``force``
        (which needs a ``reason``, 400 field ``reason``)."""
        ...

    async def reopen(self, number: int, actor: str, *, address: str = "") -> None: ...

    async def open_question(
        self, customer: str, actor: str, text: str, *, address: str = ""
    ) -> int:
        """Open a P4 incident (a question, no impact on the service); returns its number."""
        ...

    async def maintenance(self) -> list[MaintenanceView]:
        """Every window, newest start first."""
        ...

    async def kpi_report(self, month: str | None) -> KpiReport:
        """The SLA KPI report of the local ``month`` (``YYYY-MM``; None: the current one) as
        ``ctiwatch report kpi`` gives it, as of now. A bad month is refused (400, field
        ``month``); 503 when the database cannot be read."""
        ...

    async def maintenance_window(self, id: int) -> MaintenanceView:
        """One window with its history; 404 when there is none."""
        ...

    async def schedule_maintenance(
        self, window: WindowRequest, actor: str, *, address: str = ""
    ) -> MaintenanceView:
        """Refuses (400, naming the field) a window the SLA's rules refuse: one that touches
        support hours or starts sooner than the minimum notice, unless an emergency with a
        justification; a recurrence whose occurrences do not all pass. The covered customers'
        contacts are told."""
        ...

    async def change_maintenance(
        self, id: int, window: WindowRequest, actor: str, why: str, *, address: str = ""
    ) -> MaintenanceView:
        """Window ``id`` becomes ``window``, judged like a new one (the notice rule only when
        its start moves); what it was before is kept with who, when and ``why``. Refuses
        (409) a cancelled or ended window, (404) an unknown one."""
        ...

    async def cancel_maintenance(
        self, id: int, actor: str, why: str = "", *, address: str = ""
    ) -> MaintenanceView:
        """Keeps the window as ``cancelled`` (who, when, why); it suppresses nothing any more."""
        ...
