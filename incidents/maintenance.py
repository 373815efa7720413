"""Maintenance windows: the one value, what it covers, and the rule that it lies outside support
hours on the SLA calendar (weekends, holidays and closed days included).

Used by the incident engine (suppression), storage (a stored window carries one), the console and
API (scheduling), and ``simulate``. Pure: time comes in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from classifier.conditions import Condition
from classifier.observation import Service
from sla.calendar import SupportCalendar


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """An announced window ``[start, end)``; ``None`` filters cover everything."""

    start: datetime
    end: datetime
    services: frozenset[Service] | None = None
    customers: frozenset[str] | None = None
    locations: frozenset[str] | None = None
    reason: str = ""

    def active_at(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def covers_place(self, service: Service, customer: str, location: str) -> bool:
        """Whether the window is about this service at this location, whenever it is."""
        return (
            (self.services is None or service in self.services)
            and (self.customers is None or customer in self.customers)
            and (self.locations is None or location in self.locations)
        )

    def covers(self, condition: Condition, now: datetime) -> bool:
        """The window is active at ``now`` and about the condition's service and location."""
        return self.active_at(now) and self.covers_place(
            condition.service, condition.customer, condition.location
        )


class InsideSupportHours(ValueError):
    """A window that touches support hours; ``field`` is ``start`` or ``end``."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def check_outside_support_hours(calendar: SupportCalendar, start: datetime, end: datetime) -> None:
    """No instant of ``[start, end)`` may be inside support hours: raises
    :class:`InsideSupportHours` naming ``start`` (it starts inside them) or ``end`` (it runs into
    the next opening, which is on the calendar: holidays and closed days are not openings)."""
    if calendar.is_support_time(start):
        raise InsideSupportHours(
            "maintenance must lie outside support hours: the window starts inside them "
            f"({calendar.local(start):%a %d %b %H:%M})",
            "start",
        )
    opening = calendar.next_opening(start)
    if opening < end:
        raise InsideSupportHours(
            "maintenance must lie outside support hours: the window runs into them "
            f"(they open {calendar.local(opening):%a %d %b %H:%M})",
            "end",
        )
