"""Maintenance windows: the one value, what it covers, and the rule that it lies outside support
hours on the SLA calendar (weekends, holidays and closed days included).

Used by the incident engine (suppression), storage (a stored window carries one), the console and
API (scheduling), and ``simulate``. Pure: time comes in as arguments.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from dateutil.rrule import rrulestr

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
    # An emergency may touch support hours and come without notice; its justification is
    # shown wherever the window is.
    emergency: bool = False
    justification: str = ""

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


class MaintenanceRefused(ValueError):
    """A window the SLA's rules refuse; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InsideSupportHours(MaintenanceRefused):
    """A window that touches support hours; ``field`` is ``start`` or ``end``."""


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


# --- recurrence (RFC 5545 RRULE) ------------------------------------------------------------

MAX_OCCURRENCES = 366  # occurrences of one recurring window
MAX_SERIES = timedelta(days=366)  # from the first start to the last occurrence's start
MAX_RULE = 300  # characters of an RRULE
MAX_WINDOW = timedelta(days=7)

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_FREQS = ("DAILY", "WEEKLY", "MONTHLY")
_PARTS = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "WKST")
_MAX_INTERVAL = {"DAILY": 366, "WEEKLY": 52, "MONTHLY": 12}


def _refuse(message: str) -> MaintenanceRefused:
    return MaintenanceRefused(f"recurrence: {message}", "recurrence")


def recurrence_rule(text: str) -> str:
    """An RFC 5545 RRULE (``FREQ=WEEKLY;BYDAY=SA``, an ``RRULE:`` prefix allowed), checked and
    written the one way ctiwatch stores it; raises :class:`MaintenanceRefused` (``recurrence``).

    Only the parts with which every period of the rule has an occurrence are taken: FREQ
    DAILY (BYDAY only every day), WEEKLY or MONTHLY, INTERVAL, COUNT, UNTIL, BYDAY (MONTHLY:
    an ordinal within -4..4, e.g. ``1SA``), BYMONTHDAY (MONTHLY, within -28..28, not with
    BYDAY), WKST. So expanding a rule walks at most one period per occurrence, and expansion
    stops after :data:`MAX_OCCURRENCES` occurrences or :data:`MAX_SERIES`: no rule costs more.
    """
    rule = text.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[len("RRULE:") :]
    if not rule:
        raise _refuse("must not be empty")
    if len(rule) > MAX_RULE:
        raise _refuse(f"must be at most {MAX_RULE} characters")
    parts: dict[str, str] = {}
    for item in rule.split(";"):
        name, sep, value = item.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise _refuse(f"{item!r} is not NAME=VALUE")
        if name not in _PARTS:
            allowed = ", ".join(_PARTS)
            raise _refuse(f"{name} is not supported (use {allowed})")
        if name in parts:
            raise _refuse(f"{name} is given twice")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq not in _FREQS:
        raise _refuse("FREQ must be DAILY, WEEKLY or MONTHLY")
    interval = _whole(parts, "INTERVAL", 1, _MAX_INTERVAL[freq])
    _whole(parts, "COUNT", 1, MAX_OCCURRENCES)
    if "COUNT" in parts and "UNTIL" in parts:
        raise _refuse("give COUNT or UNTIL, not both")
    if "UNTIL" in parts and not re.fullmatch(r"\d{8}T\d{6}Z", parts["UNTIL"]):
        raise _refuse("UNTIL must be a UTC time such as 20270301T000000Z")
    if "WKST" in parts and parts["WKST"] not in _WEEKDAYS:
        raise _refuse("WKST must be a weekday (MO..SU)")
    days = parts["BYDAY"].split(",") if "BYDAY" in parts else []
    for day in days:
        found = re.fullmatch(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", day)
        if found is None:
            raise _refuse(f"BYDAY {day!r} is not a weekday such as SA or 1SA")
        if found.group(1) is not None and (
            freq != "MONTHLY" or not 1 <= abs(int(found.group(1))) <= 4
        ):
            raise _refuse("BYDAY ordinals (1SA, -1SU) are for FREQ=MONTHLY, within -4..4")
    if days and freq == "DAILY" and interval != 1:
        raise _refuse("BYDAY with FREQ=DAILY needs INTERVAL=1")
    if "BYMONTHDAY" in parts:
        if freq != "MONTHLY":
            raise _refuse("BYMONTHDAY is for FREQ=MONTHLY")
        if days:
            raise _refuse("give BYDAY or BYMONTHDAY, not both")
        for day in parts["BYMONTHDAY"].split(","):
            if not re.fullmatch(r"[+-]?\d{1,2}", day) or not 1 <= abs(int(day)) <= 28:
                raise _refuse(f"BYMONTHDAY {day!r} must be within -28..28 (every month has it)")
    return ";".join(f"{name}={parts[name]}" for name in _PARTS if name in parts)


def _whole(parts: dict[str, str], name: str, low: int, high: int) -> int:
    value = parts.get(name)
    if value is None:
        return low
    if not value.isdigit() or not low <= int(value) <= high:
        raise _refuse(f"{name} must be a whole number within {low}..{high}")
    return int(value)


def occurrences(
    start: datetime, end: datetime, rule: str | None, zone: tzinfo
) -> list[tuple[datetime, datetime]]:
    """The occurrences ``(start, end)`` of a window, in UTC: the window itself, or every
    occurrence of ``rule`` (checked by :func:`recurrence_rule`) from ``start``, at the same
    local wall time in ``zone`` (a 22:00 window stays at 22:00 across a clock change), each as
    long as the first. At most :data:`MAX_OCCURRENCES`, none starting later than
    :data:`MAX_SERIES` after ``start``."""
    if not rule:
        return [(start.astimezone(UTC), end.astimezone(UTC))]
    local_start = start.astimezone(zone)
    length = end - start
    horizon = start + MAX_SERIES
    # UNTIL is a UTC instant and the rule runs in wall time: ctiwatch applies it itself.
    parts = recurrence_rule(rule).split(";")
    until = horizon
    for part in parts:
        if part.startswith("UNTIL="):
            stated = datetime.strptime(part[len("UNTIL=") :], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            until = min(until, stated)
    wall_rule = ";".join(p for p in parts if not p.startswith("UNTIL="))
    try:
        expanded = rrulestr(wall_rule, dtstart=local_start.replace(tzinfo=None))
    except (ValueError, TypeError, OverflowError) as exc:
        raise _refuse(str(exc)) from None
    found: list[tuple[datetime, datetime]] = []
    for wall in itertools.islice(iter(expanded), MAX_OCCURRENCES):
        if not isinstance(wall, datetime):
            break
        at = _wall_to_utc(wall, zone)
        if at > until:
            break
        found.append((at, at + length))
    if not found or found[0][0] != start.astimezone(UTC):
        raise _refuse(
            f"the start ({local_start:%a %d %b %Y %H:%M}) must be the rule's first occurrence"
        )
    return found


def _wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """A local wall time as UTC; a time the clocks skip moves on by the skipped hour."""
    aware = wall.replace(tzinfo=zone)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != wall:
        aware = (wall + (wall - back)).replace(tzinfo=zone)
    return aware.astimezone(UTC)


# --- the rules of sla.md, section Maintenance -------------------------------------------------

DEFAULT_MIN_NOTICE = timedelta(hours=48)


def duration_words(amount: timedelta) -> str:
    """``48h``, ``47h 59m``, ``30m``: hours and minutes, rounded down to the minute."""
    minutes = max(int(amount.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or "0m"


def judge_window(
    calendar: SupportCalendar,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    min_notice: timedelta | None = DEFAULT_MIN_NOTICE,
    emergency: bool = False,
    justification: str = "",
    recurrence: str | None = None,
) -> list[tuple[datetime, datetime]]:
    """Judge a window a person asks for by the SLA's rules; returns its occurrences (UTC).

    Raises :class:`MaintenanceRefused` naming the field: an emergency without a
    ``justification``; a ``recurrence`` that is not a rule ctiwatch takes; unless it is an
    emergency, an occurrence that touches support hours (``start``/``end`` for the first,
    ``recurrence`` for a later one) or a start sooner than ``min_notice`` after ``now``
    (``start``). Emergencies are exempt from both rules, and say so. ``min_notice`` None: the
    notice rule does not apply (a change that keeps the start, perhaps of a running window).
    """
    if emergency and not justification.strip():
        raise MaintenanceRefused(
            "justification: an emergency window needs a justification (it is shown wherever "
            "the window is)",
            "justification",
        )
    found = occurrences(start, end, recurrence, calendar.zone)
    if len(found) > 1:
        gap = min(b[0] - a[0] for a, b in itertools.pairwise(found))
        if end - start > gap:
            raise _refuse(
                f"the occurrences overlap: each lasts {duration_words(end - start)}, "
                f"they start {duration_words(gap)} apart"
            )
    if emergency:
        return found
    for index, (first, last) in enumerate(found):
        try:
            check_outside_support_hours(calendar, first, last)
        except InsideSupportHours as exc:
            if index == 0:
                raise
            raise MaintenanceRefused(
                f"recurrence: the occurrence of {calendar.local(first):%a %d %b %Y} "
                f"is refused: {exc.message}",
                "recurrence",
            ) from None
    notice = start - now
    if min_notice is not None and notice < min_notice:
        raise MaintenanceRefused(
            f"start: a window must be announced at least {duration_words(min_notice)} before it "
            f"starts; this one starts in {duration_words(notice)} (an emergency is exempt, "
            "with a justification)",
            "start",
        )
    return found
