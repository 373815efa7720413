"""The rules of ``classification.md``: probe results in, conditions with their priority out.

Feed results one at a time with ``Classifier.observe``; ask ``conditions(now)`` for what holds,
or ``take_changes()`` for what changed since the last call. Work per result is O(1) amortised
and memory per target is bounded (counters, a few evidence lines, fixed-size buckets).

How the rules are read (defaults in brackets, all from ``Thresholds``):

Rounds. A result from the probes or an agent (``Source.PROBE``/``AGENT``) is one round of its
target for its source; ``ok`` false is a failed round. A miss is ``ok``: a good round. Real call
events (``Source.CALL``) never count as rounds, only as calls.

Sources. The consecutive-failure rules count per source (``ProbeResult.source_id``): the
central prober and each agent keep their own series per user and their own location state, so
one source's good rounds never break another's run of failures. The users a source probes at a
location are every user of the location for the central prober, and for an agent the users it
has sent results for (its first result for a user adds the user). Unavailable conditions name
their source (``Condition.source``, part of the key); the reason says "seen by <agent>" for an
agent. An agent that goes silent keeps its series as they were: its conditions change only
through its fresh results. The recognition and miss-count rules count every source's calls.

User unavailable (P2). A user is down once it has ``failed_rounds`` [3] consecutive failed
rounds (``since`` = that third round). It stays down, and the condition holds (``recovering``
once it answers again), until ``recovery_rounds`` [3] consecutive good rounds; a failure in
between restarts the recovery count, so a flapping user never clears. One refinement: when a user
goes down while every other user of the location is down or one failed round short of it (an
outage of the whole location arriving one result at a time), its P2 waits until the round
settles: the next result of that location that breaks the pattern, or the user's own next round,
releases it (``since`` unchanged); if the others go down too, only the P1 is reported.

Location unavailable (P1). When every user of a service at a location is down and failing
(none of them recovering), one location condition (``user`` None) replaces their per-user
conditions. It holds while every user is down, and also while the outage is ending (every user
still down is recovering); when the users still down fail again after another has cleared, it
turns back into per-user P2 conditions. It clears when the last user clears.

Location degraded (P2). Calls (``ok`` with ``recognised`` set, from any source) of a service at a
location are counted in per-minute buckets: the trailing window [1 h] is the current UTC minute
and the 59 before it, so a call counts until its minute is 60 minutes old (exactly
``(now - 1h, now]`` for calls at whole minutes). The location is degraded when, at a call, the
window holds at least ``degraded_min_calls`` [20] calls and recognised/calls is below
``degraded_rate`` [90%] (compared as exact fractions: 18/20 is not below 90%). It clears once
the rate has stayed at or above the rate (or rested on fewer than the minimum of calls) for
``miss_quiet_period`` [30 min], judged at every call and every minute boundary.

Misses (P2 frequent, P3 some). At each miss of a user, the misses in the trailing window
[24 h, ``(t - 24h, t]``, exact: the last ``frequent_misses`` miss instants are kept] are
counted: at least ``frequent_misses`` [10] gives frequent misses (P2), at least ``some_misses``
[3] some misses (P3). Some and frequent are one condition per user whose priority only rises;
while it holds, every new miss keeps it. It clears after ``miss_quiet_period`` [30 min] without
a new miss (at ``last miss + 30 min`` exactly); after that only a NEW miss, with the trailing
count still at a threshold, starts it again.

Time. ``observe`` first moves the classifier's clock to the result's time, so a miss at exactly
``last miss + 30 min`` finds the old condition cleared and starts a new one (``take_changes``
then reports it as started, with the new ``since``). ``advance(now)`` / ``conditions(now)`` move
the clock without a result; ``next_change_at()`` says when time alone can change something.
Results for targets outside the topology or services are ignored.

Restart. The state is in memory; after a restart, ``resume(engine.conditions_held(), now)``
takes back the conditions of the restored incidents (into the series of the source that saw
them) so that their recovery is still seen.

A person's resolve. ``forget(keys)`` starts the series behind those conditions again from
nothing (see its docstring): a problem that persists makes its condition again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from heapq import heappop, heappush
from itertools import count

from classifier.conditions import (
    Condition,
    ConditionChanges,
    ConditionKey,
    ConditionKind,
    Rule,
)
from classifier.observation import (
    CALL_SERVICES,
    CENTRAL,
    CHECKS,
    ProbeResult,
    Service,
    Source,
    TargetKey,
)
from classifier.thresholds import Thresholds
from classifier.windows import MinuteCounts, RecentInstants
from sla.priority import Priority
from sla.words import percent

EVIDENCE_LINES = 5
_PER_TARGET_LINES = 3
_DEFAULT_SERVICES = CALL_SERVICES

Topology = Mapping[str, Mapping[str, Sequence[str]]]
# customer -> check name -> the priority of its failure (``probes.checks``).
Checks = Mapping[str, Mapping[str, Priority]]
_Line = tuple[datetime, str, str]  # at, user, evidence


def _minute(at: datetime) -> int:
    return int(at.timestamp()) // 60


def _minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def _log_line(location: str, line: _Line) -> str:
    at, user, evidence = line
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} {location}/{user} {evidence}"


def _seen_by(source: str) -> str:
    """Words naming the source in a reason; none for the central prober (as before sources)."""
    return "" if source == CENTRAL else f" seen by {source}"


def _window_words(window: timedelta) -> str:
    if window == timedelta(hours=1):
        return "hour"
    hours = window / timedelta(hours=1)
    if hours == int(hours):
        return f"{int(hours)} hours"
    return f"{window.total_seconds() / 60:g} minutes"


class _Location:
    """One service at one location of one customer: what every source's calls share."""

    __slots__ = (
        "central",
        "counts",
        "customer",
        "degraded",
        "degraded_key",
        "groups",
        "healthy_since",
        "location",
        "miss_lines",
        "rate_timer",
        "service",
        "targets",
        "whole",
    )

    def __init__(self, customer: str, service: Service, location: str) -> None:
        self.customer = customer
        self.service = service
        self.location = location
        # The location rules (P1 for every user down, the held P2 of an outage arriving user
        # by user) are about a service at a place; a customer's checks are separate endpoints.
        self.whole = service is not Service.HTTP
        self.targets: list[_Target] = []
        self.central = _Group(self, CENTRAL)
        self.groups: dict[str, _Group] = {CENTRAL: self.central}
        self.degraded_key = ConditionKey(customer, service, location, "", Rule.DEGRADED)
        self.counts: MinuteCounts | None = None
        self.degraded = False
        self.healthy_since: datetime | None = None
        self.rate_timer = False
        self.miss_lines: deque[_Line] = deque(maxlen=EVIDENCE_LINES)


class _Group:
    """One source's consecutive-failure state at one location (of one service).

    ``members``: the users this source probes there (every user of the location for the
    central prober; for an agent, the users it has sent results for).
    """

    __slots__ = (
        "almost",
        "down",
        "failing_down",
        "held",
        "location_down",
        "members",
        "place",
        "source",
        "unavailable_key",
    )

    def __init__(self, place: _Location, source: str) -> None:
        self.place = place
        self.source = source
        self.members: list[_Series] = []
        self.down = 0  # users down (failing or recovering)
        self.failing_down = 0  # users down whose last round failed
        self.almost = 0  # users not down, one failed round short of it
        self.held: set[_Series] = set()  # users down whose condition waits for the round
        self.location_down = False
        self.unavailable_key = ConditionKey(
            place.customer, place.service, place.location, "", Rule.UNAVAILABLE, source
        )


class _Target:
    """One user of one service at one location: its misses (every source's calls)."""

    __slots__ = (
        "central",
        "group",
        "last_miss_at",
        "miss_lines",
        "miss_timer",
        "misses",
        "misses_key",
        "series",
        "user",
    )

    def __init__(self, group: _Location, user: str, miss_capacity: int) -> None:
        self.group = group
        self.user = user
        self.misses = RecentInstants(miss_capacity)
        self.miss_lines: deque[_Line] = deque(maxlen=_PER_TARGET_LINES)
        self.last_miss_at: datetime | None = None
        self.miss_timer = False
        self.misses_key = ConditionKey(
            group.customer, group.service, group.location, user, Rule.MISSES
        )
        self.central = _Series(self, group.central)
        self.series: dict[str, _Series] = {CENTRAL: self.central}


class _Series:
    """One source's consecutive rounds of one user."""

    __slots__ = (
        "down",
        "down_since",
        "fail_lines",
        "failures",
        "goods",
        "group",
        "target",
        "unavailable_key",
    )

    def __init__(self, target: _Target, group: _Group) -> None:
        self.target = target
        self.group = group
        self.failures = 0
        self.goods = 0
        self.down = False
        self.down_since: datetime | None = None
        self.fail_lines: deque[_Line] = deque(maxlen=_PER_TARGET_LINES)
        place = group.place
        self.unavailable_key = ConditionKey(
            place.customer,
            place.service,
            place.location,
            target.user,
            Rule.UNAVAILABLE,
            group.source,
        )
        group.members.append(self)


class Classifier:
    """Rolling state per target and location; the rules above turn it into conditions."""

    def __init__(
        self,
        thresholds: Thresholds,
        topology: Topology,
        services: Iterable[Service] = _DEFAULT_SERVICES,
        checks: Checks | None = None,
    ) -> None:
        self._t = thresholds
        fraction = thresholds.degraded_fraction
        self._rate_num, self._rate_den = fraction.numerator, fraction.denominator
        self._minutes = thresholds.degraded_minutes
        self._targets: dict[TargetKey, _Target] = {}
        self._groups: dict[tuple[str, Service, str], _Location] = {}
        for customer, locations in topology.items():
            for location, users in locations.items():
                for service in services:
                    group = _Location(customer, Service(service), location)
                    self._groups[(customer, group.service, location)] = group
                    for user in users:
                        target = _Target(group, user, thresholds.frequent_misses)
                        group.targets.append(target)
                        self._targets[TargetKey(group.service, customer, location, user)] = target
        # Each customer's checks: one place (location ``CHECKS``) whose users are the checks.
        self._check_priority: dict[tuple[str, str], Priority] = {}
        for customer, named in (checks or {}).items():
            if not named:
                continue
            group = _Location(customer, Service.HTTP, CHECKS)
            self._groups[(customer, Service.HTTP, CHECKS)] = group
            for name, priority in named.items():
                target = _Target(group, name, thresholds.frequent_misses)
                group.targets.append(target)
                self._targets[TargetKey(Service.HTTP, customer, CHECKS, name)] = target
                self._check_priority[(customer, name)] = priority
        self._active: dict[ConditionKey, Condition] = {}
        self._pending: dict[ConditionKey, Condition | None] = {}
        self._timers: list[tuple[datetime, int, _Target | _Location]] = []
        self._seq = count()
        self._now: datetime | None = None
        self._minute_of: datetime | None = None  # the last call's instant, and its minute
        self._last_minute = 0
        self.version = 0  # bumps whenever a condition starts, clears or changes kind

    # --- public -----------------------------------------------------------------------------

    def observe(self, result: ProbeResult) -> bool:
        """Take one result; True when a condition started, cleared or changed priority."""
        version = self.version
        at = result.at
        timers = self._timers
        if timers and timers[0][0] <= at:
            self._advance(at)
        elif self._now is None or at > self._now:
            self._now = at  # what ``_advance`` does when no timer is due
        target = self._targets.get(result.target)
        if target is not None:
            ok = result.ok
            if result.source is not Source.CALL:
                source = result.source_id
                series = target.central if source == CENTRAL else target.series.get(source)
                if series is None:
                    series = self._new_series(target, source)
                # A good round of a user that is up, with no failure to forget and nobody
                # held, changes nothing: the usual case, decided without the bookkeeping.
                if not ok or series.failures or series.down or series.group.held:
                    self._round(series, result)
            if ok and result.recognised is not None:
                self._call(target, result)
        return self.version != version

    def advance(self, now: datetime) -> bool:
        """Let time pass without a result (quiet periods, the sliding window)."""
        version = self.version
        self._advance(now)
        return self.version != version

    def conditions(self, now: datetime) -> list[Condition]:
        """Every condition that holds at ``now``, ordered by customer, service, location, user."""
        self._advance(now)
        return [self._active[key] for key in sorted(self._active)]

    def resync(self, held: Iterable[Condition]) -> None:
        """Report again what differs from ``held`` (the conditions the incident side holds after
        it was restored from the database): a condition that holds here and is missing or
        different there is started again, one held there that no longer holds here is cleared.
        ``take_changes`` gives them; nothing else changes."""
        known = {condition.key: condition for condition in held}
        for key, condition in self._active.items():
            old = known.get(key)
            if old is None or old.kind is not condition.kind or old.since != condition.since:
                self._pending[key] = condition
        for key in known:
            if key not in self._active:
                self._pending[key] = None
        if self._pending:
            self.version += 1

    def series_down(self) -> Iterator[tuple[TargetKey, str, bool]]:
        """Each (target, source) series kept, and whether the rules hold that user down for
        that source (down until ``recovery_rounds`` good rounds). Read only: for ``/metrics``.
        The central prober has a series for every user of the topology from the start."""
        for key, target in self._targets.items():
            for source, series in target.series.items():
                yield key, source, series.down

    def take_changes(self) -> ConditionChanges:
        """Conditions started/changed and cleared since the last call (for incremental apply)."""
        pending, self._pending = self._pending, {}
        started = tuple(c for c in pending.values() if c is not None)
        cleared = tuple(key for key, c in pending.items() if c is None)
        return ConditionChanges(started=started, cleared=cleared)

    def resume(self, conditions: Iterable[Condition], now: datetime) -> None:
        """Hold again the conditions that held before a restart (``engine.conditions_held()``).

        They are not reported as started (the engine knows them); the recovery rules run on
        them as on any other: a user or location is down until ``recovery_rounds`` good rounds
        of the source that saw it, a degraded location is judged from the calls seen from now
        on, and a miss condition clears ``miss_quiet_period`` after ``now`` unless a new miss
        arrives. An unavailable condition without a source (stored before sources) is the
        central prober's; an agent's location condition covers every user of the location.
        """
        self._advance(now)
        for condition in conditions:
            place = self._groups.get((condition.customer, condition.service, condition.location))
            if place is None:
                continue
            kind = condition.kind
            if kind.rule is Rule.UNAVAILABLE and not condition.source:
                condition = replace(condition, source=CENTRAL)
            if kind is ConditionKind.LOCATION_UNAVAILABLE:
                for member in place.targets:
                    self._assume_down(self._series_of(member, condition.source), condition.since)
                place.groups[condition.source].location_down = True
            elif kind is ConditionKind.LOCATION_DEGRADED:
                place.degraded = True
                place.healthy_since = None
                if place.counts is None:
                    place.counts = MinuteCounts(self._minutes)
                if not place.rate_timer:
                    place.rate_timer = True
                    self._schedule(_minute_start(_minute(now) + 1), place)
            else:
                target = next((t for t in place.targets if t.user == condition.user), None)
                if target is None:
                    continue
                if kind in (ConditionKind.USER_UNAVAILABLE, ConditionKind.CHECK_FAILED):
                    self._assume_down(self._series_of(target, condition.source), condition.since)
                else:
                    target.last_miss_at = max(now, target.last_miss_at or now)
                    if not target.miss_timer:
                        target.miss_timer = True
                        self._schedule(target.last_miss_at + self._t.miss_quiet_period, target)
            self._active[condition.key] = condition

    def forget(self, keys: Iterable[ConditionKey]) -> None:
        """Start the series behind these conditions again from nothing (a person's resolve).

        Unavailable: the source's consecutive rounds of the user (or of every user it probes
        at the location) restart at zero: 3 more failed rounds make the condition again.
        Degraded: the location's recognition window restarts empty (the calls of the last hour
        are forgotten; at least ``degraded_min_calls`` new calls make it again). Misses: the
        user's misses are forgotten (``some_misses`` new misses in the window make it again).
        The conditions are dropped without being reported as cleared: the engine forgot them.
        """
        for key in keys:
            place = self._groups.get((key.customer, key.service, key.location))
            if place is None:
                continue
            if key.rule is Rule.UNAVAILABLE:
                group = place.groups.get(key.source or CENTRAL)
                if group is None:
                    continue
                for series in group.members:
                    if not key.user or series.target.user == key.user:
                        self._reset_series(series)
                if not key.user:
                    group.location_down = False
                    group.held.clear()
            elif key.rule is Rule.DEGRADED:
                place.counts = None
                place.degraded = False
                place.healthy_since = None
                place.miss_lines.clear()
            else:
                for target in place.targets:
                    if target.user == key.user:
                        target.misses = RecentInstants(self._t.frequent_misses)
                        target.last_miss_at = None
                        target.miss_lines.clear()
            self._active.pop(key, None)
            self._pending.pop(key, None)

    def _reset_series(self, series: _Series) -> None:
        group = series.group
        short = self._t.failed_rounds - 1
        if series.down:
            group.down -= 1
            if not series.goods:
                group.failing_down -= 1
        elif short and series.failures == short:
            group.almost -= 1
        series.failures = series.goods = 0
        series.down = False
        series.down_since = None
        series.fail_lines.clear()
        group.held.discard(series)

    def _series_of(self, target: _Target, source: str) -> _Series:
        series = target.series.get(source)
        return series if series is not None else self._new_series(target, source)

    @staticmethod
    def _new_series(target: _Target, source: str) -> _Series:
        """A source's first result for a user: the user joins what that source probes."""
        place = target.group
        group = place.groups.get(source)
        if group is None:
            group = place.groups[source] = _Group(place, source)
        series = target.series[source] = _Series(target, group)
        return series

    def _assume_down(self, series: _Series, since: datetime) -> None:
        if series.down:
            return
        group = series.group
        short = self._t.failed_rounds - 1
        if short and series.failures == short:
            group.almost -= 1
        series.down = True
        series.down_since = since
        series.failures = max(series.failures, self._t.failed_rounds)
        series.goods = 0
        group.down += 1
        group.failing_down += 1

    def next_change_at(self) -> datetime | None:
        """The next instant at which time alone may change a condition."""
        return self._timers[0][0] if self._timers else None

    # --- bookkeeping --------------------------------------------------------------------------

    def _put(self, condition: Condition) -> None:
        key = condition.key
        old = self._active.get(key)
        self._active[key] = condition
        if old is None or old.kind is not condition.kind or old.since != condition.since:
            self._pending[key] = condition
            self.version += 1

    def _show(self, key: ConditionKey, recovering: bool) -> None:
        """Change only how a condition reads (recovering or not): no version bump."""
        current = self._active.get(key)
        if current is not None and current.recovering != recovering:
            self._active[key] = replace(current, recovering=recovering)

    def _drop(self, key: ConditionKey) -> None:
        if self._active.pop(key, None) is not None:
            self._pending[key] = None
            self.version += 1

    def _schedule(self, due: datetime, subject: _Target | _Location) -> None:
        heappush(self._timers, (due, next(self._seq), subject))

    def _advance(self, now: datetime) -> None:
        if self._now is None or now > self._now:
            self._now = now
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, _, subject = heappop(timers)
            if isinstance(subject, _Target):
                self._miss_timer(subject, due)
            else:
                self._rate_timer(subject, due)

    # --- failures (per source) ----------------------------------------------------------------

    def _round(self, series: _Series, result: ProbeResult) -> None:
        group = series.group
        if group.held and series in group.held:
            self._release(group)  # a held user's next round: its condition waits no longer
        if self._count(series, result):
            self._settle(group, series, result.at)
        if group.held and not self._looks_location_wide(group):
            self._release(group)

    def _count(self, series: _Series, result: ProbeResult) -> bool:
        """Update the counters of one round; True when the user went down, up or recovering."""
        group = series.group
        short = self._t.failed_rounds - 1  # failures of a user one round short of down
        if result.ok:
            if short and not series.down and series.failures == short:
                group.almost -= 1
            series.failures = 0
            if not series.down:
                return False
            series.goods += 1
            if series.goods == 1:
                group.failing_down -= 1
            if series.goods >= self._t.recovery_rounds:
                series.down = False
                series.goods = 0
                group.down -= 1
            return True
        series.failures += 1
        series.fail_lines.append((result.at, series.target.user, result.evidence))
        if series.down:
            if not series.goods:
                return False  # still failing: nothing changes
            series.goods = 0
            group.failing_down += 1
            return True
        if series.failures > short:
            if short:
                group.almost -= 1
            series.down = True
            series.down_since = result.at
            group.down += 1
            group.failing_down += 1
            return True
        if series.failures == short:
            group.almost += 1
        return False

    @staticmethod
    def _looks_location_wide(group: _Group) -> bool:
        """Every user is down and failing, or one failed round short of it."""
        return group.almost > 0 and group.failing_down + group.almost == len(group.members)

    def _release(self, group: _Group) -> None:
        held, group.held = group.held, set()
        if not group.location_down:
            for member in group.members:
                if member in held and member.down:
                    self._put(self._user_condition(member))

    def _settle(self, group: _Group, series: _Series, at: datetime) -> None:
        if not group.place.whole:  # a check: its own condition, nothing location-wide
            if not series.down:
                self._drop(series.unavailable_key)
            elif series.unavailable_key in self._active:
                self._show(series.unavailable_key, recovering=series.goods > 0)
            else:
                self._put(self._check_condition(series))
            return
        members = len(group.members)
        if group.location_down:
            if group.down == 0:
                group.location_down = False
                self._drop(group.unavailable_key)
            elif group.down == members or group.failing_down == 0:
                self._show(group.unavailable_key, recovering=group.failing_down == 0)
            else:
                group.location_down = False
                self._drop(group.unavailable_key)
                for member in group.members:
                    if member.down:
                        self._put(self._user_condition(member))
            return
        if group.failing_down == members:
            group.location_down = True
            group.held.clear()
            for member in group.members:
                self._drop(member.unavailable_key)
            self._put(self._location_condition(group, at))
            return
        if not series.down:
            self._drop(series.unavailable_key)
        elif series.unavailable_key in self._active:
            self._show(series.unavailable_key, recovering=series.goods > 0)
        elif self._looks_location_wide(group):
            group.held.add(series)
        else:
            self._put(self._user_condition(series))

    def _user_condition(self, series: _Series) -> Condition:
        place, source = series.group.place, series.group.source
        user = series.target.user
        lines = tuple(_log_line(place.location, line) for line in series.fail_lines)
        last = series.fail_lines[-1][2] if series.fail_lines else "no answer"
        assert series.down_since is not None
        return Condition(
            customer=place.customer,
            service=place.service,
            location=place.location,
            user=user,
            kind=ConditionKind.USER_UNAVAILABLE,
            priority=ConditionKind.USER_UNAVAILABLE.priority,
            since=series.down_since,
            reason=(
                f"{self._t.failed_rounds} consecutive failed rounds{_seen_by(source)} "
                f"for {user} at {place.location}: {last}"
            ),
            evidence=lines,
            recovering=series.goods > 0,
            source=source,
        )

    def _check_condition(self, series: _Series) -> Condition:
        place = series.group.place
        name = series.target.user
        last = series.fail_lines[-1][2] if series.fail_lines else "no answer"
        assert series.down_since is not None
        return Condition(
            customer=place.customer,
            service=place.service,
            location=place.location,
            user=name,
            kind=ConditionKind.CHECK_FAILED,
            priority=self._check_priority.get(
                (place.customer, name), ConditionKind.CHECK_FAILED.priority
            ),
            since=series.down_since,
            reason=f"{self._t.failed_rounds} consecutive failed rounds of check {name}: {last}",
            evidence=tuple(_log_line(place.location, line) for line in series.fail_lines),
            recovering=series.goods > 0,
            source=series.group.source,
        )

    def _location_condition(self, group: _Group, at: datetime) -> Condition:
        place, source = group.place, group.source
        latest = sorted(
            (member.fail_lines[-1] for member in group.members if member.fail_lines),
            key=lambda line: line[0],
        )[-EVIDENCE_LINES:]
        last = latest[-1][2] if latest else "no answer"
        return Condition(
            customer=place.customer,
            service=place.service,
            location=place.location,
            user=None,
            kind=ConditionKind.LOCATION_UNAVAILABLE,
            priority=ConditionKind.LOCATION_UNAVAILABLE.priority,
            since=at,
            reason=(
                f"{self._t.failed_rounds} consecutive failed rounds{_seen_by(source)} for every "
                f"user at {place.location} ({len(group.members)} users): {last}"
            ),
            evidence=tuple(_log_line(place.location, line) for line in latest),
            source=source,
        )

    # --- calls: recognition rate and misses ---------------------------------------------------

    def _call(self, target: _Target, result: ProbeResult) -> None:
        group = target.group
        at = result.at
        if at is self._minute_of:  # the results of a round share their instant
            minute = self._last_minute
        else:
            minute = self._last_minute = _minute(at)
            self._minute_of = at
        if group.counts is None:
            group.counts = MinuteCounts(self._minutes)
        recognised = bool(result.recognised)
        group.counts.add(minute, recognised)
        if not recognised:
            line = (result.at, target.user, result.evidence)
            group.miss_lines.append(line)
            target.miss_lines.append(line)
            self._miss(target, result.at)
        self._judge_rate(group, result.at, minute)

    def _judge_rate(self, group: _Location, at: datetime, minute: int) -> None:
        counts = group.counts
        assert counts is not None
        counts.roll(minute)
        calls, recognised = counts.calls, counts.recognised
        low = (
            calls >= self._t.degraded_min_calls
            and recognised * self._rate_den < self._rate_num * calls
        )
        if not group.degraded:
            if low:
                group.degraded = True
                group.healthy_since = None
                self._put(self._degraded_condition(group, at, calls, recognised))
                if not group.rate_timer:
                    group.rate_timer = True
                    self._schedule(_minute_start(minute + 1), group)
            return
        if low:
            group.healthy_since = None
            self._show(group.degraded_key, recovering=False)
        elif group.healthy_since is None:
            group.healthy_since = at
            self._show(group.degraded_key, recovering=True)
        elif at >= group.healthy_since + self._t.miss_quiet_period:
            group.degraded = False
            group.healthy_since = None
            self._drop(group.degraded_key)

    def _rate_timer(self, group: _Location, due: datetime) -> None:
        group.rate_timer = False
        if not group.degraded:
            return
        minute = _minute(due)
        self._judge_rate(group, due, minute)
        if group.degraded:
            group.rate_timer = True
            self._schedule(_minute_start(minute + 1), group)

    def _degraded_condition(
        self, group: _Location, at: datetime, calls: int, recognised: int
    ) -> Condition:
        return Condition(
            customer=group.customer,
            service=group.service,
            location=group.location,
            user=None,
            kind=ConditionKind.LOCATION_DEGRADED,
            priority=ConditionKind.LOCATION_DEGRADED.priority,
            since=at,
            reason=(
                f"recognition {percent(Fraction(recognised, calls))} ({recognised}/{calls}) "
                f"over the trailing "
                f"{_window_words(self._t.degraded_window)} < {self._t.degraded_rate * 100:g}%"
            ),
            evidence=tuple(_log_line(group.location, line) for line in group.miss_lines),
        )

    def _miss(self, target: _Target, at: datetime) -> None:
        t = self._t
        target.misses.add(at)
        misses = target.misses.count_after(at - t.misses_window)
        current = self._active.get(target.misses_key)
        if misses >= t.frequent_misses:
            kind = ConditionKind.FREQUENT_MISSES
        elif current is not None:
            kind = current.kind  # a holding condition only rises, and every miss keeps it
        elif misses >= t.some_misses:
            kind = ConditionKind.SOME_MISSES
        else:
            return
        if target.last_miss_at is None or at > target.last_miss_at:
            target.last_miss_at = at
        if not target.miss_timer:
            target.miss_timer = True
            self._schedule(target.last_miss_at + t.miss_quiet_period, target)
        if current is not None and current.kind is kind:
            return
        since = at if current is None else current.since
        self._put(self._misses_condition(target, kind, since, misses))

    def _misses_condition(
        self, target: _Target, kind: ConditionKind, since: datetime, misses: int
    ) -> Condition:
        t = self._t
        group = target.group
        window = _window_words(t.misses_window)
        where = f"for {target.user} at {group.location} in the trailing {window}"
        if kind is ConditionKind.FREQUENT_MISSES:
            reason = f"at least {misses} unrecognised calls {where} (≥ {t.frequent_misses})"
        else:
            reason = (
                f"{misses} unrecognised calls {where} ({t.some_misses} to {t.frequent_misses - 1})"
            )
        return Condition(
            customer=group.customer,
            service=group.service,
            location=group.location,
            user=target.user,
            kind=kind,
            priority=kind.priority,
            since=since,
            reason=reason,
            evidence=tuple(_log_line(group.location, line) for line in target.miss_lines),
        )

    def _miss_timer(self, target: _Target, due: datetime) -> None:
        target.miss_timer = False
        if target.misses_key not in self._active or target.last_miss_at is None:
            return
        quiet_end = target.last_miss_at + self._t.miss_quiet_period
        if quiet_end <= due:
            self._drop(target.misses_key)
        else:
            target.miss_timer = True
            self._schedule(quiet_end, target)
