"""What a customer's own status page shows, as plain view models, and the service behind it.

A customer page names that customer only: its locations by name, its services by their display
names (``sla.words``), states in words, its own incidents with the updates people wrote (never
the internal timeline, evidence, probe URLs or on-call numbers) and the maintenance that covers
it. The implementation is :class:`ctiwatch.custpages.CustomerPagesImpl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Protocol

from ctiwatch.web.service import IncidentState, MaintenanceState, ServiceState


@dataclass(frozen=True, slots=True)
class UptimeDay:
    day: date
    state: str  # up | minor | down | nodata | maintenance | closed (sla.uptime.DayUptime.state)
    share: Fraction | None
    words: str  # the bar's tooltip: "Tue 1 Dec: 99.5% up (8h 30m of support hours)"


@dataclass(frozen=True, slots=True)
class PublicService:
    service: str  # click2dial | crm
    name: str  # its display name
    state: ServiceState
    days: tuple[UptimeDay, ...]  # oldest first
    uptime: Fraction | None  # over the days shown


@dataclass(frozen=True, slots=True)
class PublicLocation:
    name: str
    services: tuple[PublicService, ...]


@dataclass(frozen=True, slots=True)
class PublicUpdate:
    at: datetime
    kind: str  # opened | acknowledged | updated | resolved | reopened
    text: str


@dataclass(frozen=True, slots=True)
class PublicIncident:
    number: int
    title: str  # in words, from what it covers: "Click2Dial unavailable in Amsterdam"
    status: IncidentState
    priority: int
    opened_at: datetime
    resolved_at: datetime | None
    updates: tuple[PublicUpdate, ...]  # newest first


@dataclass(frozen=True, slots=True)
class PublicWindow:
    start: datetime  # the next (or current) occurrence
    end: datetime
    state: MaintenanceState
    services: str  # "Click2Dial, CRM integration" or "all services"
    locations: str  # this customer's locations it covers, by name
    reason: str
    emergency: bool
    justification: str
    repeats: bool


@dataclass(frozen=True, slots=True)
class CustomerPageView:
    customer: str  # the id: used in nothing shown but the feeds' ids
    name: str
    generated_at: datetime
    state: ServiceState  # the worst of its services
    locations: tuple[PublicLocation, ...]
    incidents: tuple[PublicIncident, ...]  # newest first
    maintenance: tuple[PublicWindow, ...]  # active and upcoming, soonest first
    days: int  # how many days the bars cover
    key: tuple[object, ...]  # changes whenever anything shown changes (the web caches by it)


class CustomerPages(Protocol):
    async def customer_for_token(self, token: str) -> str | None:
        """The customer whose current link ``token`` is; None for an unknown or old one."""
        ...

    def is_public(self, customer: str) -> bool:
        """Config says ``public: true`` for this customer."""
        ...

    async def page(self, customer: str) -> CustomerPageView: ...
