"""What the pages read: a state version the pipeline bumps and the results' rollups in memory.

The status page, ``/api/v1/status`` and the live updates never recompute from raw results and
never tick the pipeline. The :class:`~ctiwatch.persist.Pipeline` bumps a :class:`StateVersion`
after every committed step (``major``: an incident, a condition or a window changed) and after
every stored batch of results (figures only); :class:`LiveRollups` keeps, per place and per
user, the last ``window`` of results in minute buckets (the same aggregates as the stored
minute rollups: results, failures, calls, misses, latency histogram) and the newest result per
target. The console builds its :class:`~ctiwatch.web.service.StatusView` from these and the
monitor's memory, once per version; the web caches what it renders per built view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from classifier.observation import ProbeResult, Service
from ctiwatch.storage.records import (
    LATENCY_BOUNDS_MS,
    CallCounts,
    Rollup,
    histogram_percentile,
    latency_bucket,
)

MINUTE = timedelta(minutes=1)


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


@dataclass(slots=True)
class _Bucket:
    """One minute of one place's (or one user's) results; the stored rollups' aggregates."""

    count: int = 0
    failures: int = 0
    calls: int = 0
    misses: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_MS))

    def add(self, result: ProbeResult) -> None:
        self.count += 1
        if not result.ok:
            self.failures += 1
            return
        if result.recognised is not None:
            self.calls += 1
            if not result.recognised:
                self.misses += 1
        self.latency_sum += result.latency_ms
        self.latency_max = max(self.latency_max, result.latency_ms)
        self.histogram[latency_bucket(result.latency_ms)] += 1

    def merge(self, rollup: Rollup) -> None:
        self.count += rollup.count
        self.failures += rollup.failures
        self.calls += rollup.calls
        self.misses += rollup.misses
        self.latency_sum += rollup.latency_sum_ms
        self.latency_max = max(self.latency_max, rollup.latency_max_ms)
        for index, count in enumerate(rollup.histogram):
            self.histogram[index] += count


PlaceKey = tuple[str, str, str]  # customer, location, service
UserKey = tuple[str, str, str, str]  # customer, location, user, service


@dataclass(frozen=True, slots=True)
class Figures:
    """A place's (or user's) figures over the trailing window."""

    counts: CallCounts
    latency_p95_ms: float | None
    results: int = 0
    failures: int = 0


_NO_FIGURES = Figures(CallCounts(0, 0), None)


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


class LiveRollups:
    """The trailing ``window`` of results in minute buckets per place and per user, and the
    newest result's time per target; fed by the pipeline with every stored batch.

    A bucket counts when any of its minute is inside the window (the figures cover the window
    in whole minutes, as the stored minute rollups do)."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.loaded = False
        self._places: dict[PlaceKey, dict[datetime, _Bucket]] = {}
        self._users: dict[UserKey, dict[datetime, _Bucket]] = {}
        self._latest: dict[UserKey, datetime] = {}
        self._place_latest: dict[PlaceKey, datetime] = {}

    def load(self, minute_rollups: Iterable[Rollup], latest: Iterable[ProbeResult]) -> None:
        """Start from what the store holds (the stored minute rollups of the window and the
        latest result of every target); results observed before this are in the store too."""
        self._places.clear()
        self._users.clear()
        self._latest.clear()
        self._place_latest.clear()
        for rollup in minute_rollups:
            service = rollup.service.value
            place = (rollup.customer, rollup.location, service)
            user = (rollup.customer, rollup.location, rollup.user, service)
            bucket = _minute(rollup.bucket)
            self._places.setdefault(place, {}).setdefault(bucket, _Bucket()).merge(rollup)
            self._users.setdefault(user, {}).setdefault(bucket, _Bucket()).merge(rollup)
        for result in latest:
            self._note_latest(result)
        self.loaded = True

    def observe(self, batch: Iterable[ProbeResult]) -> None:
        if not self.loaded:
            return  # the first load reads them from the store
        for result in batch:
            target = result.target
            service = target.service.value
            bucket = _minute(result.at)
            place = (target.customer, target.location, service)
            user = (target.customer, target.location, target.user, service)
            self._places.setdefault(place, {}).setdefault(bucket, _Bucket()).add(result)
            self._users.setdefault(user, {}).setdefault(bucket, _Bucket()).add(result)
            self._note_latest(result)

    def _note_latest(self, result: ProbeResult) -> None:
        target = result.target
        service = target.service.value
        user = (target.customer, target.location, target.user, service)
        place = (target.customer, target.location, service)
        if user not in self._latest or self._latest[user] < result.at:
            self._latest[user] = result.at
        if place not in self._place_latest or self._place_latest[place] < result.at:
            self._place_latest[place] = result.at

    def prune(self, now: datetime) -> None:
        """Forget buckets wholly before the window (called when a view is built)."""
        oldest = _minute(now - self.window)
        for series in (self._places, self._users):
            for buckets in series.values():
                for start in [b for b in buckets if b < oldest]:
                    del buckets[start]

    def place(self, customer: str, location: str, service: Service, now: datetime) -> Figures:
        return self._figures(self._places.get((customer, location, service.value)), now)

    def user(
        self, customer: str, location: str, user: str, service: Service, now: datetime
    ) -> Figures:
        return self._figures(self._users.get((customer, location, user, service.value)), now)

    def last_result_at(self, customer: str, location: str, service: Service) -> datetime | None:
        return self._place_latest.get((customer, location, service.value))

    def user_last_result_at(
        self, customer: str, location: str, user: str, service: Service
    ) -> datetime | None:
        return self._latest.get((customer, location, user, service.value))

    def _figures(self, buckets: dict[datetime, _Bucket] | None, now: datetime) -> Figures:
        if not buckets:
            return _NO_FIGURES
        oldest = now - self.window - MINUTE  # a bucket counts while any minute of it is inside
        calls = misses = results = failures = 0
        latency_max = 0.0
        histogram = [0] * len(LATENCY_BOUNDS_MS)
        for start, bucket in buckets.items():
            if start <= oldest or start > now:
                continue
            calls += bucket.calls
            misses += bucket.misses
            results += bucket.count
            failures += bucket.failures
            latency_max = max(latency_max, bucket.latency_max)
            for index, count in enumerate(bucket.histogram):
                histogram[index] += count
        return Figures(
            CallCounts(calls, misses),
            histogram_percentile(histogram, 0.95, latency_max),
            results,
            failures,
        )
