"""What the pages read: a state version the pipeline bumps and the results' rollups in memory.

The status page, ``/api/v1/status`` and the live updates never recompute from raw results and
never tick the pipeline. The :class:`~ctiwatch.persist.Pipeline` bumps a :class:`StateVersion`
after every committed step (``major``: an incident, a condition or a window changed) and after
every stored batch of results (figures only); :class:`LiveRollups` keeps, per place and per
user, the last ``window`` of results in minute buckets (the same aggregates as the stored
minute rollups: results, failures, calls, misses, latency histogram) and the newest result per
target. The console builds its :class:`~ctiwatch.web.service.StatusView` from these and the
monitor's memory, once per version; the web caches what it renders per built view.

Sized for 10,000 targets on a small machine: a place keeps its minute buckets (with the
latency histogram) and their running total, so its figures cost the histogram's length, not
the window's; a user (target) keeps only its counts, one packed 8-byte integer per minute in
an ``array`` and a running total; nothing keeps a result object. The first load streams the
stored minute rollups in chunks and yields to the event loop between them (and within one
every :data:`LOAD_STEP_SECONDS`).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import operator
import time
from array import array
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from classifier.observation import ProbeResult, Service
from ctiwatch.storage.records import (
    LATENCY_BOUNDS_MS,
    CallCounts,
    histogram_percentile,
    latency_bucket,
)

MINUTE = timedelta(minutes=1)
# The first load hands the event loop back at least this often (and after every chunk).
LOAD_STEP_SECONDS = 0.002


class StateVersion:
    """A counter bumped on every change the pages show, and a way to wait for the next bump.

    ``value`` counts every change; ``major`` only those of incidents, conditions, windows and
    agents (not the figures a new batch of results moves)."""

    def __init__(self) -> None:
        self.value = 0
        self.major = 0
        self._changed = asyncio.Event()

    def bump(self, *, major: bool = True) -> int:
        self.value += 1
        if major:
            self.major += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self.value

    async def wait_after(self, seen: int, within: float) -> int:
        """The version once it is beyond ``seen`` (at once if it already is), or the current one
        after ``within`` seconds without a change."""
        if self.value > seen:
            return self.value
        waiting = self._changed
        try:
            async with asyncio.timeout(within):
                await waiting.wait()
        except TimeoutError:
            pass
        return self.value


_HISTOGRAM = len(LATENCY_BOUNDS_MS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _minute_number(at: datetime) -> int:
    """Minutes since the epoch (UTC) of the minute ``at`` falls in."""
    return int((at - _EPOCH).total_seconds() // 60)


def _counted_minutes(now: datetime, window: timedelta) -> tuple[int, int]:
    """The first and last minute number whose bucket counts at ``now``: a bucket counts while
    any minute of it is inside the window (start > now - window - 1 min) and it has begun."""
    seconds = (now - _EPOCH).total_seconds()
    first = math.floor((seconds - window.total_seconds() - 60) / 60) + 1
    return first, math.floor(seconds / 60)


_ZEROS = bytes(8 * (6 + _HISTOGRAM))  # a new bucket's values, as doubles


class _Place:
    """One place's minute buckets over the window and their running total.

    A bucket is ``[count, failures, calls, misses, latency_max, latency_sum, h00..h15]``."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        # Each bucket an ``array("d")``: 8 bytes a value, where a list held a float object
        # (24 bytes) and a pointer for each (at 10,000 targets, ~6 MB less).
        self.buckets: dict[int, array[float]] = {}
        self.total: list[float] = [0.0] * (6 + _HISTOGRAM)

    def bucket(self, minute: int) -> array[float]:
        found = self.buckets.get(minute)
        if found is None:
            found = self.buckets[minute] = array("d", _ZEROS)
            if len(self.buckets) > 1 and minute < max(self.buckets):
                self.buckets = dict(sorted(self.buckets.items()))  # a late minute: keep order
        return found

    def add(self, minute: int, values: Sequence[float]) -> None:
        """Add ``[count, failures, calls, misses, latency_max, latency_sum, h...]``."""
        bucket, total = self.bucket(minute), self.total
        # Element by element in C; latency_max is a maximum (the total's is taken over the
        # buckets when asked, its slot stays 0).
        latency_max = max(bucket[4], values[4])
        bucket[:] = array("d", map(operator.add, bucket, values))
        bucket[4] = latency_max
        total[:] = map(operator.add, total, values)
        total[4] = 0.0

    def forget_before(self, first: int) -> None:
        buckets, total = self.buckets, self.total
        while buckets:
            oldest = next(iter(buckets))
            if oldest >= first:
                return
            for index, value in enumerate(buckets.pop(oldest)):
                if index != 4:
                    total[index] -= value

    def figures(self, first: int, last: int) -> Figures:
        self.forget_before(first)
        totals = list(self.total)
        latency_max = 0.0
        for minute, bucket in self.buckets.items():
            if minute > last:  # not begun yet (a clock ahead): not counted
                for index, value in enumerate(bucket):
                    if index != 4:
                        totals[index] -= value
            else:
                latency_max = max(latency_max, bucket[4])
        histogram = [int(v) for v in totals[6:]]
        return Figures(
            CallCounts(int(totals[2]), int(totals[3])),
            histogram_percentile(histogram, 0.95, latency_max),
            int(totals[0]),
            int(totals[1]),
        )


# A user's minute: its number and its counts packed in one integer of an ``array("q")``:
# minute << 36 | count << 27 | failures << 18 | calls << 9 | misses (each count up to 511 a
# minute, more is counted as 511: a target is probed about once a minute per source).
_FIELD = 9
_MAX = (1 << _FIELD) - 1


def _pack(minute: int, counts: Sequence[int]) -> int:
    packed = minute
    for value in counts:
        packed = packed << _FIELD | min(max(value, 0), _MAX)
    return packed


def _unpack(packed: int) -> tuple[int, list[int]]:
    counts = [0, 0, 0, 0]
    for index in (3, 2, 1, 0):
        counts[index] = packed & _MAX
        packed >>= _FIELD
    return packed, counts


class _User:
    """One target's counts per minute over the window (packed) and their running total
    ``[count, failures, calls, misses]``."""

    __slots__ = ("minutes", "total")

    def __init__(self) -> None:
        self.minutes = array("q")
        self.total = [0, 0, 0, 0]

    def add(self, minute: int, counts: Sequence[int]) -> None:
        minutes, total = self.minutes, self.total
        if not minutes or minutes[-1] >> (4 * _FIELD) < minute:  # the newest minute: append
            minutes.append(_pack(minute, counts))
            for index in range(4):
                total[index] += min(max(counts[index], 0), _MAX)
            return
        at = bisect.bisect_left(minutes, minute << (4 * _FIELD))
        if at < len(minutes) and minutes[at] >> (4 * _FIELD) == minute:
            _, had = _unpack(minutes[at])
            merged = [min(a + b, _MAX) for a, b in zip(had, counts, strict=True)]
            minutes[at] = _pack(minute, merged)
            for index in range(4):
                total[index] += merged[index] - had[index]
        else:
            minutes.insert(at, _pack(minute, counts))
            for index in range(4):
                total[index] += min(max(counts[index], 0), _MAX)

    def forget_before(self, first: int) -> None:
        minutes, total = self.minutes, self.total
        gone = bisect.bisect_left(minutes, first << (4 * _FIELD))
        for packed in minutes[:gone]:
            _, counts = _unpack(packed)
            for index in range(4):
                total[index] -= counts[index]
        del minutes[:gone]

    def figures(self, first: int, last: int) -> Figures:
        self.forget_before(first)
        minutes = self.minutes
        if not minutes or minutes[-1] >> (4 * _FIELD) <= last:  # none ahead of the clock
            total = self.total
            return Figures(CallCounts(total[2], total[3]), None, total[0], total[1])
        totals = list(self.total)
        for index in range(len(minutes) - 1, -1, -1):
            minute, counts = _unpack(minutes[index])
            if minute <= last:
                break
            for i in range(4):
                totals[i] -= counts[i]
        return Figures(CallCounts(totals[2], totals[3]), None, totals[0], totals[1])


PlaceKey = tuple[str, str, str]  # customer, location, service
UserKey = tuple[str, str, str, str]  # customer, location, user, service


@dataclass(frozen=True, slots=True)
class Figures:
    """A place's (or user's) figures over the trailing window (a user's carry no latency)."""

    counts: CallCounts
    latency_p95_ms: float | None
    results: int = 0
    failures: int = 0


_NO_FIGURES = Figures(CallCounts(0, 0), None)


def _values(result: ProbeResult) -> list[float]:
    """A result as a place's bucket values."""
    values = [0.0] * (6 + _HISTOGRAM)
    values[0] = 1
    if not result.ok:
        values[1] = 1
        return values
    if result.recognised is not None:
        values[2] = 1
        if not result.recognised:
            values[3] = 1
    values[4] = values[5] = result.latency_ms
    values[6 + latency_bucket(result.latency_ms)] = 1
    return values


class LiveRollups:
    """The trailing ``window`` of results in minute buckets per place and per user, and the
    newest result's time per target; fed by the pipeline with every stored batch.

    A bucket counts when any of its minute is inside the window (the figures cover the window
    in whole minutes, as the stored minute rollups do). It observes from the moment it is
    told to (:meth:`start`): what was stored before comes from the store (:meth:`load`)."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.loaded = False
        self.observing = False
        self._places: dict[PlaceKey, _Place] = {}
        self._users: dict[UserKey, _User] = {}
        self._latest: dict[UserKey, datetime] = {}
        self._place_latest: dict[PlaceKey, datetime] = {}
        # What user_in said per user for the span asked last: a view is built every few
        # seconds and most users had no result since, so their figures are not counted again.
        # A result forgets its user's; a new span (a minute later) forgets all.
        self._known: dict[UserKey, tuple[Figures, datetime | None]] = {}
        self._known_span = (0, 0)

    def start(self) -> None:
        """Observe every batch from now on (the store's rows so far come through load)."""
        self.observing = True

    async def load(
        self,
        minute_rows: AsyncIterator[list[Any]],
        latest_rows: AsyncIterator[list[Any]],
        pause: bool = True,
    ) -> None:
        """Add what the store held when :meth:`start` was called: chunks of minute rollup
        rows ``(customer, location, user, service, bucket, count, failures, calls, misses,
        latency_sum, latency_max, h00..h15)`` and of ``(customer, location, user, service,
        at)`` for the latest result of every target; between chunks the event loop runs
        (``pause``), and batches observed meanwhile are added beside them."""
        clock = time.perf_counter
        until = clock() + LOAD_STEP_SECONDS
        minutes: dict[datetime, int] = {}  # a window holds few distinct buckets
        async for chunk in minute_rows:
            for row in chunk:
                if pause and clock() >= until:
                    await asyncio.sleep(0)
                    until = clock() + LOAD_STEP_SECONDS
                customer, location, user, service, bucket = row[:5]
                minute = minutes.get(bucket)
                if minute is None:
                    minute = minutes[bucket] = _minute_number(bucket)
                count, failures, calls, misses = map(int, row[5:9])
                place = self._places.get((customer, location, service))
                if place is None:
                    place = self._places[(customer, location, service)] = _Place()
                place.add(
                    minute,
                    [count, failures, calls, misses, float(row[10]), float(row[9]), *row[11:]],
                )
                key = (customer, location, user, service)
                series = self._users.get(key)
                if series is None:
                    series = self._users[key] = _User()
                series.add(minute, (count, failures, calls, misses))
            if pause:
                await asyncio.sleep(0)
                until = clock() + LOAD_STEP_SECONDS
        async for chunk in latest_rows:
            for customer, location, user, service, at in chunk:
                self._note_latest((customer, location, user, service), at)
            if pause:
                await asyncio.sleep(0)
        self._known = {}
        self.loaded = True

    def observe(self, batch: Iterable[ProbeResult]) -> None:
        if not self.observing:
            return  # the first load reads them from the store
        for result in batch:
            target = result.target
            service = target.service.value
            minute = _minute_number(result.at)
            key = (target.customer, target.location, target.user, service)
            place_key = key[0], key[1], service
            place = self._places.get(place_key)
            if place is None:
                place = self._places[place_key] = _Place()
            values = _values(result)
            place.add(minute, values)
            series = self._users.get(key)
            if series is None:
                series = self._users[key] = _User()
            series.add(minute, (int(values[0]), int(values[1]), int(values[2]), int(values[3])))
            # Keep each series to the window before the newest result, read or not.
            first, _ = _counted_minutes(result.at, self.window)
            if place.buckets and next(iter(place.buckets)) < first:
                place.forget_before(first)
            if series.minutes and series.minutes[0] >> (4 * _FIELD) < first:
                series.forget_before(first)
            self._note_latest(key, result.at)
            self._known.pop(key, None)

    def _note_latest(self, user: UserKey, at: datetime) -> None:
        if user not in self._latest or self._latest[user] < at:
            self._latest[user] = at
        place = (user[0], user[1], user[3])
        if place not in self._place_latest or self._place_latest[place] < at:
            self._place_latest[place] = at

    def prune(self, now: datetime) -> None:
        """Forget buckets wholly before the window (called when a view is built)."""
        first, _ = _counted_minutes(now, self.window)
        for place in self._places.values():
            place.forget_before(first)

    def footprint(self) -> tuple[int, int]:
        """How many place buckets and how many user minutes are held (for tests)."""
        return (
            sum(len(p.buckets) for p in self._places.values()),
            sum(len(u.minutes) for u in self._users.values()),
        )

    def place(self, customer: str, location: str, service: Service, now: datetime) -> Figures:
        found = self._places.get((customer, location, service.value))
        if found is None:
            return _NO_FIGURES
        return found.figures(*_counted_minutes(now, self.window))

    def user(
        self, customer: str, location: str, user: str, service: Service, now: datetime
    ) -> Figures:
        found = self._users.get((customer, location, user, service.value))
        if found is None:
            return _NO_FIGURES
        return found.figures(*_counted_minutes(now, self.window))

    def span(self, now: datetime) -> tuple[int, int]:
        """The minutes counted at ``now``, for :meth:`user_in` (one computation per view)."""
        return _counted_minutes(now, self.window)

    def user_in(self, key: UserKey, span: tuple[int, int]) -> tuple[Figures, datetime | None]:
        """A user's figures over ``span`` (:meth:`span`) and its latest result's time: what
        :meth:`user` and :meth:`user_last_result_at` say, for a view of every user."""
        if span != self._known_span:
            self._known, self._known_span = {}, span
        known = self._known.get(key)
        if known is None:
            found = self._users.get(key)
            figures = _NO_FIGURES if found is None else found.figures(*span)
            known = self._known[key] = (figures, self._latest.get(key))
        return known

    def last_result_at(self, customer: str, location: str, service: Service) -> datetime | None:
        return self._place_latest.get((customer, location, service.value))

    def user_last_result_at(
        self, customer: str, location: str, user: str, service: Service
    ) -> datetime | None:
        return self._latest.get((customer, location, user, service.value))
