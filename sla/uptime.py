"""Uptime per day counted in support hours, maintenance excluded, from hour rollups.

A place (a customer's service at one location) has, per UTC hour, the number of probe results
of all its users and how many of them failed (the stored hour rollups). A **probe-hour counts
as up** when at most half of its results failed, and as down when more than half failed; an
hour without results counts neither way (no data). Each hour weighs what it holds of support
time (working days, ``support_start``-``support_end`` local time, :class:`SupportCalendar`)
outside the place's maintenance: 08:00-09:00 on a working day that opens at 08:30 weighs 30
minutes, an hour at the weekend or during a maintenance window nothing. A day's uptime is the
up weight over the weight of the hours with data; a day without support time is ``closed``.

Pure: the caller reads the rollups and the windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from sla.calendar import SupportCalendar

HOUR = timedelta(hours=1)
_ZERO = timedelta(0)

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class HourCount:
    """One place's probe results in one hour, and how many failed."""

    results: int
    failures: int

    @property
    def up(self) -> bool | None:
        """None without results; up when at most half of them failed."""
        if self.results <= 0:
            return None
        return self.failures * 2 <= self.results


@dataclass(frozen=True, slots=True)
class DayUptime:
    """One local day: its support time, what maintenance took of it, what had data and how
    much of that was up. ``closed`` names why there are no support hours (weekend, holiday)."""

    day: date
    support: timedelta = _ZERO
    maintenance: timedelta = _ZERO
    counted: timedelta = _ZERO  # support time outside maintenance in hours with data
    up: timedelta = _ZERO
    closed: str | None = None

    @property
    def share(self) -> Fraction | None:
        """Up over counted, None when nothing was counted."""
        if self.counted <= _ZERO:
            return None
        return Fraction(int(self.up.total_seconds()), int(self.counted.total_seconds()))

    @property
    def state(self) -> str:
        """``closed``, ``maintenance`` (all its support time), ``nodata``, ``up`` (100%),
        ``minor`` (99% or more) or ``down``."""
        if self.closed is not None or self.support <= _ZERO:
            return "closed"
        share = self.share
        if share is None:
            return "maintenance" if self.maintenance >= self.support else "nodata"
        if share == 1:
            return "up"
        return "minor" if share >= Fraction(99, 100) else "down"


def total_share(days: Iterable[DayUptime]) -> Fraction | None:
    """The uptime over several days: their up time over their counted time."""
    up = counted = _ZERO
    for day in days:
        up += day.up
        counted += day.counted
    if counted <= _ZERO:
        return None
    return Fraction(int(up.total_seconds()), int(counted.total_seconds()))


def _overlap(a: Span, b: Span) -> Span | None:
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return (start, end) if start < end else None


def _covered(span: Span, others: Sequence[Span]) -> timedelta:
    """How much of ``span`` the union of ``others`` covers."""
    pieces = sorted(o for o in (_overlap(span, other) for other in others) if o is not None)
    total = _ZERO
    reach = span[0]
    for start, end in pieces:
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


def day_uptime(
    calendar: SupportCalendar,
    day: date,
    hours: Mapping[datetime, HourCount],
    maintenance: Sequence[Span] = (),
) -> DayUptime:
    """``day`` (local) from the place's ``hours`` (keyed by the UTC hour's start) and the
    maintenance spans that cover the place."""
    if not calendar.is_working_day(day):
        return DayUptime(day, closed=calendar.closure_reason(day) or "closed")
    opening, closing = calendar.opening(day), calendar.closing(day)
    support = maintained = counted = up = _ZERO
    hour = opening.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < closing:
        part = _overlap((hour, hour + HOUR), (opening, closing))
        if part is not None:
            length = part[1] - part[0]
            taken = _covered(part, maintenance)
            support += length
            maintained += taken
            verdict = hours.get(hour, HourCount(0, 0)).up
            if verdict is not None:
                counted += length - taken
                if verdict:
                    up += length - taken
        hour += HOUR
    return DayUptime(day, support, maintained, counted, up)


def daily_uptime(
    calendar: SupportCalendar,
    days: Sequence[date],
    hours: Mapping[datetime, HourCount],
    maintenance: Sequence[Span] = (),
) -> list[DayUptime]:
    return [day_uptime(calendar, day, hours, maintenance) for day in days]
