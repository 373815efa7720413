"""The customer status pages' service (:class:`~ctiwatch.web.customers.CustomerPages`).

Built from the read model like the operators' page: the tiles' states from the console's
:class:`~ctiwatch.web.service.StatusView` (built once per state version), the incident history
once per major state version (an incident changed), and the 90-day uptime bars from the stored
hour rollups (:mod:`sla.uptime`): a day that has ended is computed once and kept, today's bar at
most once per clock hour; a request never reads rollups.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from classifier.conditions import ConditionKind
from classifier.observation import CALL_SERVICES, Service
from ctiwatch.config import Config, CustomerConfig
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.persist import Pipeline
from ctiwatch.storage import IncidentRecord, Store
from ctiwatch.web.customers import (
    CustomerPageView,
    PublicIncident,
    PublicLocation,
    PublicService,
    PublicUpdate,
    PublicWindow,
    UptimeDay,
)
from ctiwatch.web.service import CustomerStatus, IncidentState, MaintenanceView, ServiceState
from incidents.model import Incident
from sla.calendar import SupportCalendar
from sla.uptime import DayUptime, HourCount, Span, day_uptime, total_share
from sla.words import percent, service_name

DAYS = 90
HISTORY = 50  # incidents on a customer's page
_SEVERITY: dict[str, int] = {"ok": 0, "unknown": 1, "maintenance": 2, "degraded": 3, "down": 4}
_UNAVAILABLE = {ConditionKind.LOCATION_UNAVAILABLE: 0, ConditionKind.USER_UNAVAILABLE: 1}
# What a customer reads of an incident's timeline: the people's updates and the state changes.
_PUBLIC_KINDS = {
    "opened": "We noticed a problem and are looking into it.",
    "acknowledged": "Our engineers are working on it.",
    "updated": "",
    "reopened": "The problem came back; we are looking into it again.",
    "resolved": "Resolved: the service works again.",
}

Place = tuple[str, Service]  # location, service


@dataclass
class _Bars:
    """One customer's days: the ended ones kept, today's with the hour it was computed in."""

    ended: dict[date, dict[Place, DayUptime]]
    today: dict[Place, DayUptime]
    today_date: date | None = None
    hour: datetime | None = None


class CustomerPagesImpl:
    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        console: ConsoleServiceImpl,
        *,
        days: int = DAYS,
    ) -> None:
        self._config = config
        self._pipeline = pipeline
        self._store: Store = pipeline.store
        self._clock = pipeline.clock
        self._calendar: SupportCalendar = pipeline.monitor.policy.calendar
        self._console = console
        self._days = days
        self._customers = {c.id: c for c in config.topology.customers}
        self._bars: dict[str, _Bars] = {}
        self._history: dict[str, tuple[int, tuple[PublicIncident, ...]]] = {}
        self._lock = asyncio.Lock()
        self.bar_builds = 0  # how many times the rollups were read (tests: never per request)

    async def customer_for_token(self, token: str) -> str | None:
        if not token or len(token) > 100:
            return None
        customer = await self._store.customer_links.customer_of(token)
        return customer if customer in self._customers else None

    def is_public(self, customer: str) -> bool:
        found = self._customers.get(customer)
        return found is not None and found.public

    async def page(self, customer: str) -> CustomerPageView:
        config = self._customers[customer]
        status = await self._console.status()
        now = status.generated_at
        async with self._lock:
            bars = await self._uptime(config, now)
            incidents = await self._incidents(config)
        mine = next(c for c in status.customers if c.id == customer)
        locations = tuple(self._location(config, mine, bars, now))
        states = [s.state for loc in locations for s in loc.services]
        worst: ServiceState = max(states, key=lambda s: _SEVERITY[s], default="unknown")
        windows = tuple(
            sorted(
                (w for w in (self._window(v, config, now) for v in status.maintenance) if w),
                key=lambda w: w.start,
            )
        )
        return CustomerPageView(
            customer=customer,
            name=config.name or customer,
            generated_at=now,
            state=worst,
            locations=locations,
            incidents=incidents,
            maintenance=windows,
            days=self._days,
            key=(status.version, self._pipeline.version.major, self._bars[customer].hour),
        )

    # --- tiles and bars -------------------------------------------------------------------------

    def _location(
        self,
        config: CustomerConfig,
        status: CustomerStatus,
        bars: dict[date, dict[Place, DayUptime]],
        now: datetime,
    ) -> list[PublicLocation]:
        shown = self._shown_days(now)
        found = []
        for location in status.locations:
            services = []
            for tile in location.services:
                service = Service(tile.service)
                place = (location.id, service)
                days = [bars.get(d, {}).get(place) or DayUptime(d) for d in shown]
                services.append(
                    PublicService(
                        service=tile.service,
                        name=service_name(tile.service),
                        state=tile.state,
                        days=tuple(_day_view(d) for d in days),
                        uptime=total_share(days),
                    )
                )
            found.append(PublicLocation(location.name or location.id, tuple(services)))
        return found

    def _shown_days(self, now: datetime) -> list[date]:
        today = self._calendar.local(now).date()
        return [today - timedelta(days=n) for n in range(self._days - 1, -1, -1)]

    async def _uptime(
        self, config: CustomerConfig, now: datetime
    ) -> dict[date, dict[Place, DayUptime]]:
        """The customer's days; reads the hour rollups at most once per clock hour."""
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        bars = self._bars.setdefault(config.id, _Bars({}, {}))
        days = self._shown_days(now)
        today = days[-1]
        if bars.hour != hour or bars.today_date != today:
            missing = [d for d in days[:-1] if d not in bars.ended]
            wanted = [*missing, today]
            since = self._calendar.opening(wanted[0]) - timedelta(days=1)
            computed = await self._compute(config, wanted, since, now)
            for day in missing:
                bars.ended[day] = computed[day]
            for day in [d for d in bars.ended if d < days[0]]:
                del bars.ended[day]
            bars.today, bars.today_date, bars.hour = computed[today], today, hour
            self.bar_builds += 1
        return {**bars.ended, today: bars.today}

    async def _compute(
        self, config: CustomerConfig, days: list[date], since: datetime, now: datetime
    ) -> dict[date, dict[Place, DayUptime]]:
        hours: dict[Place, dict[datetime, HourCount]] = defaultdict(dict)
        rollups = await self._store.results.rollups(
            "hour", since, now + timedelta(hours=1), customer=config.id
        )
        for rollup in rollups:
            place = (rollup.location, rollup.service)
            at = rollup.bucket.astimezone(UTC)
            before = hours[place].get(at, HourCount(0, 0))
            hours[place][at] = HourCount(
                before.results + rollup.count, before.failures + rollup.failures
            )
        windows = [
            o
            for record in await self._store.maintenance.list(ending_after=since)
            if not record.cancelled
            for o in record.windows
        ]
        result: dict[date, dict[Place, DayUptime]] = {d: {} for d in days}
        for location in config.locations:
            for service in CALL_SERVICES:
                place = (location.id, service)
                spans: list[Span] = [
                    (w.start, w.end)
                    for w in windows
                    if w.covers_place(service, config.id, location.id)
                ]
                for day in days:
                    result[day][place] = day_uptime(self._calendar, day, hours[place], spans)
        return result

    # --- incidents ------------------------------------------------------------------------------

    async def _incidents(self, config: CustomerConfig) -> tuple[PublicIncident, ...]:
        major = self._pipeline.version.major
        cached = self._history.get(config.id)
        if cached is not None and cached[0] == major:
            return cached[1]
        records = await self._store.incidents.list(None, config.id, HISTORY)
        names = {loc.id: loc.name or loc.id for loc in config.locations}
        found = []
        for record in records:
            if not record.automatic:
                continue  # a question to support is the operators' business
            timeline = await self._store.incidents.timeline(record.number)
            updates = [
                PublicUpdate(e.at, e.kind, e.detail if e.kind == "updated" else text)
                for e in timeline
                if (text := _PUBLIC_KINDS.get(e.kind)) is not None
                and (e.kind != "updated" or e.actor)
            ]
            found.append(
                PublicIncident(
                    number=record.number,
                    title=_public_title(record, names),
                    status=_state(record),
                    priority=int(record.priority),
                    opened_at=record.opened_at,
                    resolved_at=record.resolved_at,
                    updates=tuple(reversed(updates)),
                )
            )
        history = tuple(found)
        self._history[config.id] = (major, history)
        return history

    # --- maintenance ----------------------------------------------------------------------------

    def _window(
        self, window: MaintenanceView, config: CustomerConfig, now: datetime
    ) -> PublicWindow | None:
        if window.state in ("cancelled", "ended"):
            return None
        if window.customers is not None and config.id not in window.customers:
            return None
        covered = [
            loc.name or loc.id
            for loc in config.locations
            if window.locations is None or loc.id in window.locations
        ]
        if not covered:
            return None
        spans = window.occurrences or ((window.start, window.end),)
        start, end = next(((a, b) for a, b in spans if b > now), spans[-1])
        return PublicWindow(
            start=start,
            end=end,
            state=window.state,
            services=", ".join(service_name(s) for s in window.services)
            if window.services
            else "all services",
            locations=", ".join(covered),
            reason=window.reason,
            emergency=window.emergency,
            justification=window.justification,
            repeats=bool(window.recurrence),
        )


def _state(record: IncidentRecord) -> IncidentState:
    value = str(record.state.get("status", record.status))
    if value == "acknowledged":
        return "acknowledged"
    return "resolved" if value == "resolved" else "open"


def _public_title(record: IncidentRecord, names: dict[str, str]) -> str:
    """What an incident covers, in words: ``Click2Dial unavailable in Amsterdam``."""
    try:
        scope = list(Incident.from_dict(dict(record.state)).scope.values())
    except (KeyError, TypeError, ValueError):
        scope = []
    worst: dict[tuple[Service, str], int] = {}
    checks = sorted({entry.user or "" for entry in scope if entry.service is Service.HTTP})
    for entry in scope:
        if entry.service is Service.HTTP:
            continue
        key = (entry.service, entry.location)
        rank = _UNAVAILABLE.get(entry.kind, 2)
        worst[key] = min(worst.get(key, 2), rank)
    words = ("unavailable", "unavailable for some users", "degraded")
    parts = [
        f"{service_name(service.value)} {words[rank]} in {names.get(location, 'one location')}"
        for (service, location), rank in sorted(worst.items(), key=lambda kv: kv[0][0].value)
    ]
    parts += [f"check {name} failing" for name in checks]
    if not parts:
        return "Service problem"
    shown = "; ".join(parts[:3])
    return shown + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")


def _day_view(day: DayUptime) -> UptimeDay:
    label = f"{day.day:%a %d %b}"
    state = day.state
    if state == "closed":
        words = f"{label}: no support hours ({day.closed or 'closed'})"
    elif state == "maintenance":
        words = f"{label}: maintenance all day"
    elif state == "nodata":
        words = f"{label}: no data"
    else:
        words = f"{label}: {percent(day.share)} up"
        if day.maintenance:
            words += " (maintenance excluded)"
    return UptimeDay(day.day, state, day.share, words)
