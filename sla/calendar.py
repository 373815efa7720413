"""The SLA calendar: when support hours run, and support-time arithmetic over them.

Support hours are ``support_start``-``support_end`` local wall time on working days (Monday to
Friday that are not public holidays of ``country`` as the ``holidays`` package defines them, nor
configured closed days). Because the hours are wall time, a daylight-saving change never adds or
removes support time: every working day holds exactly ``support_end - support_start``.

Support time is a line made of the working days laid end to end. An instant maps onto that line
as a *position*: a working day and the support time elapsed on it, from zero (opening) up to and
including the full day (closing). Closing of one working day and opening of the next are the same
point on the line; arithmetic that ends exactly there answers with the closing (17:00), never the
next day's 08:30.

Every instant returned is an aware UTC datetime; instants passed in may be in any zone but must be
aware. Results are cached per calendar instance (holiday sets per year, next working day per day),
so the calendar is immutable after construction and cheap to ask the same things again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays

CONFIGURED_CLOSED = "closed day (configured)"
WEEKEND = "weekend"
_ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)
_DISPLAY_LANGUAGE = "en_US"


class SupportCalendar:
    """Working days and support hours of one time zone and holiday country."""

    __slots__ = (
        "_closed_config",
        "_country",
        "_day_length",
        "_end",
        "_next_working",
        "_removed",
        "_start",
        "_tz",
        "_year_closed",
        "timezone",
    )

    timezone: str
    _tz: ZoneInfo
    _start: time
    _end: time
    _day_length: timedelta
    _country: str
    _closed_config: frozenset[date]
    _removed: frozenset[str]
    _year_closed: dict[int, dict[date, str]]
    _next_working: dict[date, date]

    def __init__(
        self,
        timezone: str = "Europe/Amsterdam",
        support_start: time = time(8, 30),
        support_end: time = time(17, 0),
        country: str = "NL",
        closed_days: Iterable[date] = (),
        removed_holidays: Iterable[str] = (),
    ) -> None:
        if support_start.tzinfo is not None or support_end.tzinfo is not None:
            raise ValueError("support hours are local wall times without a time zone")
        if support_end <= support_start:
            raise ValueError("support_end must be after support_start")
        day_length = datetime.combine(date.min, support_end) - datetime.combine(
            date.min, support_start
        )
        try:
            holidays.country_holidays(country, years=2000)
        except NotImplementedError as exc:
            raise ValueError(f"the holidays package knows no country {country!r}") from exc
        setter = object.__setattr__
        setter(self, "timezone", timezone)
        setter(self, "_tz", ZoneInfo(timezone))
        setter(self, "_start", support_start)
        setter(self, "_end", support_end)
        setter(self, "_day_length", day_length)
        setter(self, "_country", country)
        setter(self, "_closed_config", frozenset(closed_days))
        setter(self, "_removed", frozenset(name.strip().casefold() for name in removed_holidays))
        # Memo tables: filled on demand, never observable from outside (same answers always).
        setter(self, "_year_closed", {})
        setter(self, "_next_working", {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SupportCalendar is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SupportCalendar is immutable (cannot delete {name!r})")

    def __repr__(self) -> str:
        return (
            f"SupportCalendar(timezone={self.timezone!r}, support_start={self._start!r}, "
            f"support_end={self._end!r}, country={self._country!r}, "
            f"closed_days={sorted(self._closed_config)!r}, "
            f"removed_holidays={sorted(self._removed)!r})"
        )

    # --- facts ----------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return self._tz

    @property
    def support_start(self) -> time:
        return self._start

    @property
    def support_end(self) -> time:
        return self._end

    @property
    def country(self) -> str:
        return self._country

    @property
    def support_day(self) -> timedelta:
        """Support time in one working day (8.5 hours by default)."""
        return self._day_length

    def local(self, at: datetime) -> datetime:
        """``at`` in the calendar's time zone."""
        _require_aware(at)
        return at.astimezone(self._tz)

    def holiday_names(self, years: Iterable[int]) -> set[str]:
        """Every holiday name (display and native language) the country has in ``years``."""
        names: set[str] = set()
        for year in years:
            for table in self._holiday_tables(year):
                for label in table.values():
                    names.update(_split_names(label))
        return names

    def closure_reason(self, day: date) -> str | None:
        """Why ``day`` is not a working day (holiday name, configured, weekend), or None."""
        reason = self._closed_in_year(day.year).get(day)
        if reason is not None:
            return reason
        if day.weekday() >= 5:
            return WEEKEND
        return None

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._closed_in_year(day.year)

    def is_support_time(self, at: datetime) -> bool:
        """True inside ``[support_start, support_end)`` local time on a working day."""
        local = self.local(at)
        return self.is_working_day(local.date()) and self._start <= local.time() < self._end

    def closed_days_between(self, start: date, end: date) -> list[tuple[date, str]]:
        """Each non-working day from ``start`` to ``end`` (both included) and why."""
        closed: list[tuple[date, str]] = []
        day = start
        while day <= end:
            reason = self.closure_reason(day)
            if reason is not None:
                closed.append((day, reason))
            day += _ONE_DAY
        return closed

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        cached = self._next_working.get(day)
        if cached is not None:
            return cached
        following = day + _ONE_DAY
        while not self.is_working_day(following):
            following += _ONE_DAY
        self._next_working[day] = following
        return following

    def opening(self, day: date) -> datetime:
        """Support opening of ``day`` (UTC)."""
        return datetime.combine(day, self._start, tzinfo=self._tz).astimezone(UTC)

    def closing(self, day: date) -> datetime:
        """Support closing of ``day`` (UTC)."""
        return datetime.combine(day, self._end, tzinfo=self._tz).astimezone(UTC)

    # --- support-time arithmetic ------------------------------------------------------------

    def next_opening(self, at: datetime) -> datetime:
        """``at`` itself (in UTC) inside support hours, otherwise the next opening."""
        day, elapsed = self._position(at)
        if elapsed >= self._day_length:
            return self.opening(self.next_working_day(day))
        return self._instant(day, elapsed)

    def support_between(self, start: datetime, end: datetime) -> timedelta:
        """Support time from ``start`` to ``end``; zero when ``end`` is not after ``start``."""
        if end <= start:
            return _ZERO
        first_day, first_elapsed = self._position(start)
        last_day, last_elapsed = self._position(end)
        if first_day == last_day:
            return last_elapsed - first_elapsed
        between = self._working_days_in(first_day + _ONE_DAY, last_day)
        return (self._day_length - first_elapsed) + between * self._day_length + last_elapsed

    def add_support(self, start: datetime, amount: timedelta) -> datetime:
        """The instant ``amount`` of support time after ``start`` (UTC).

        A result that lands exactly at closing time is that closing (17:00), not the next
        opening. ``amount`` zero gives ``start`` if it is inside support hours or exactly at a
        closing, otherwise the next opening.
        """
        if amount < _ZERO:
            raise ValueError("amount of support time must not be negative")
        day, elapsed = self._position(start)
        if not amount:
            return self._instant(day, elapsed)
        return self._advance(day, elapsed, amount)

    def working_days_deadline(self, reported_at: datetime, days: int) -> datetime:
        """Closing of the ``days``-th working day, counting from the repair clock start.

        The SLA's footnote: "the start date is the day after the report". The first counted day
        is the first working day strictly after the report's local calendar day.
        """
        if days < 1:
            raise ValueError("a working-days target must be at least 1 day")
        day = self.next_working_day(self.local(reported_at).date())
        for _ in range(days - 1):
            day = self.next_working_day(day)
        return self.closing(day)

    def repair_clock_start(self, reported_at: datetime) -> datetime:
        """Opening of the first working day strictly after the report's local day (UTC)."""
        return self.opening(self.next_working_day(self.local(reported_at).date()))

    # --- internals ------------------------------------------------------------------------

    def _position(self, at: datetime) -> tuple[date, timedelta]:
        """Where ``at`` lies on the support line: a working day and support time elapsed on it.

        Before opening is elapsed zero; exactly at closing is the full day; after closing or on
        a closed day is elapsed zero on the next working day.
        """
        _require_aware(at)
        local = at.astimezone(self._tz)
        day = local.date()
        if day.weekday() < 5 and day not in self._closed_in_year(day.year):
            wall = local.time()
            if wall <= self._start:
                return day, _ZERO
            if wall <= self._end:
                opening = datetime.combine(day, self._start)
                return day, local.replace(tzinfo=None) - opening
        return self.next_working_day(day), _ZERO

    def _advance(self, day: date, elapsed: timedelta, amount: timedelta) -> datetime:
        """``amount`` (> 0) after position (day, elapsed); ties at closing stay on that day."""
        total = elapsed + amount
        full_days, rest = divmod(total, self._day_length)
        if not rest:
            full_days -= 1
            rest = self._day_length
        for _ in range(full_days):
            day = self.next_working_day(day)
        return self._instant(day, rest)

    def _instant(self, day: date, elapsed: timedelta) -> datetime:
        return (datetime.combine(day, self._start, tzinfo=self._tz) + elapsed).astimezone(UTC)

    def _working_days_in(self, first: date, stop: date) -> int:
        """Working days in ``[first, stop)``: weekdays minus closed weekdays."""
        if stop <= first:
            return 0
        span = (stop - first).days
        weeks, extra = divmod(span, 7)
        weekdays = weeks * 5
        weekday = first.weekday()
        for offset in range(extra):
            if (weekday + offset) % 7 < 5:
                weekdays += 1
        closed = 0
        for year in range(first.year, stop.year + 1):
            for day in self._closed_in_year(year):
                if first <= day < stop and day.weekday() < 5:
                    closed += 1
        return weekdays - closed

    def _closed_in_year(self, year: int) -> dict[date, str]:
        """Holidays (not removed) and configured closed days of ``year``, with their reason."""
        closed = self._year_closed.get(year)
        if closed is not None:
            return closed
        closed = {}
        display, *others = self._holiday_tables(year)
        for day, label in display.items():
            names = _split_names(label)
            aliases = [_split_names(table.get(day, "")) for table in others]
            kept = []
            for index, name in enumerate(names):
                keys = {name.casefold()}
                keys.update(
                    alias[index].casefold() for alias in aliases if len(alias) == len(names)
                )
                if not keys & self._removed:
                    kept.append(name)
            if kept:
                closed[day] = "; ".join(kept)
        for day in self._closed_config:
            if day.year == year:
                closed[day] = CONFIGURED_CLOSED
        self._year_closed[year] = closed
        return closed

    def _holiday_tables(self, year: int) -> list[holidays.HolidayBase]:
        """Holidays of ``year`` named in English where available, then in the native language."""
        base = holidays.country_holidays(self._country, years=year)
        tables = []
        languages = tuple(getattr(base, "supported_languages", ()))
        native = getattr(base, "default_language", None)
        if _DISPLAY_LANGUAGE in languages:
            tables.append(
                holidays.country_holidays(self._country, years=year, language=_DISPLAY_LANGUAGE)
            )
        if native is not None and native != _DISPLAY_LANGUAGE:
            tables.append(holidays.country_holidays(self._country, years=year, language=native))
        if not tables:
            tables.append(base)
        return tables


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError(f"instant {at.isoformat()} has no time zone offset")


def _split_names(label: object) -> list[str]:
    """The holidays package joins two holidays on one date with ``"; "``."""
    return [part.strip() for part in str(label).split(";") if part.strip()]
