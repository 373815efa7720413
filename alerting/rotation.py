"""Who is on call at a given instant: weekly rotation plus overrides. Pure.

* Overrides win: the first override whose ``[start, end)`` holds ``now`` gives the numbers.
  ``start``/``end`` are ISO 8601; without an offset they are local time in the SLA zone; a bare
  date means that day's midnight for ``start`` and the midnight after it for ``end`` (so
  ``end: 2026-12-31`` covers New Year's Eve).
* Otherwise week ``N`` is covered by ``weeks[N % len(weeks)]``; the handover is Monday 00:00
  local time. Weeks are counted continuously, week 1 being the one starting Monday 2025-12-29
  (so ``N`` is the ISO week number throughout 2026), and never restart at New Year: ISO week 53
  of 2026 is ``N`` = 53 and the week after it ``N`` = 54, so consecutive weeks always advance.
* Without a rotation, the fixed on-call list (``alerting.oncall``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Override:
    start: datetime
    end: datetime
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rotation:
    weeks: tuple[tuple[str, ...], ...] = ()
    overrides: tuple[Override, ...] = ()
    fallback: tuple[str, ...] = ()
    timezone: str = "Europe/Amsterdam"


def on_call(rotation: Rotation, now: datetime) -> tuple[str, ...]:
    for override in rotation.overrides:
        if override.start <= now < override.end:
            return override.numbers
    if rotation.weeks:
        week = rotation_week(now.astimezone(ZoneInfo(rotation.timezone)).date())
        return rotation.weeks[week % len(rotation.weeks)]
    return rotation.fallback


# Monday of ISO week 1 of 2026: counting from it keeps N equal to the ISO week number in 2026.
_WEEK_ONE = date(2025, 12, 29)


def rotation_week(day: date) -> int:
    """The continuous week number of ``day`` (week 1 starts Monday 2025-12-29)."""
    return (day - _WEEK_ONE).days // 7 + 1


def parse_instant(value: str, timezone: str, *, end: bool = False) -> datetime:
    """ISO 8601 date or date-time; naive values are local time in ``timezone``."""
    zone = ZoneInfo(timezone)
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), zone)
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date or date-time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
