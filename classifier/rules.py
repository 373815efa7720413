"""The rules of ``classification.md``: probe results in, conditions with their priority out.

Feed results one at a time with ``Classifier.observe``; ask ``conditions(now)`` for what holds,
or ``take_changes()`` for what changed since the last call. Work per result is O(1) amortised
and memory per target is bounded (counters, a few evidence lines, fixed-size buckets).

How the rules are read (defaults in brackets, all from ``Thresholds``):

Rounds. A result from the probes or an agent (``Source.PROBE``/``AGENT``) is one round of its
target; ``ok`` false is a failed round. A miss is ``ok``: a good round. Real call events
(``Source.CALL``) never count as rounds, only as calls.

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
takes back the conditions of the restored incidents so that their recovery is still seen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
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
from classifier.observation import ProbeResult, Service, Source, TargetKey
from classifier.thresholds import Thresholds
from classifier.windows import MinuteCounts, RecentInstants
from sla.words import percent

EVIDENCE_LINES = 5
_PER_TARGET_LINES = 3
_DEFAULT_SERVICES = (Service.CLICK2DIAL, Service.CRM)

Topology = Mapping[str, Mapping[str, Sequence[str]]]
_Line = tuple[datetime, str, str]  # at, user, evidence


def _minute(at: datetime) -> int:
    return int(at.timestamp()) // 60


def _minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def _log_line(location: str, line: _Line) -> str:
    at, user, evidence = line
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} {location}/{user} {evidence}"


def _window_words(window: timedelta) -> str:
    if window == timedelta(hours=1):
        return "hour"
    hours = window / timedelta(hours=1)
    if hours == int(hours):
        return f"{int(hours)} hours"
    return f"{window.total_seconds() / 60:g} minutes"


class _Location:
    """One service at one location of one customer."""

    __slots__ = (
        "almost",
        "counts",
        "customer",
        "degraded",
        "degraded_key",
        "down",
        "failing_down",
        "healthy_since",
        "held",
        "location",
        "location_down",
        "miss_lines",
        "rate_timer",
        "service",
        "targets",
        "unavailable_key",
    )

    def __init__(self, customer: str, service: Service, location: str) -> None:
        self.customer = customer
        self.service = service
        self.location = location
        self.targets: list[_Target] = []
        self.down = 0  # users down (failing or recovering)
        self.failing_down = 0  # users down whose last round failed
        self.almost = 0  # users not down, one failed round short of it
        self.held: set[_Target] = set()  # users down whose condition waits for the round
        self.location_down = False
        self.unavailable_key = ConditionKey(customer, service, location, "", Rule.UNAVAILABLE)
        self.degraded_key = ConditionKey(customer, service, location, "", Rule.DEGRADED)
        self.counts: MinuteCounts | None = None
        self.degraded = False
        self.healthy_since: datetime | None = None
        self.rate_timer = False
        self.miss_lines: deque[_Line] = deque(maxlen=EVIDENCE_LINES)


class _Target:
    """One user of one service at one location."""

    __slots__ = (
        "down",
        "down_since",
        "fail_lines",
        "failures",
        "goods",
        "group",
        "last_miss_at",
        "miss_lines",
        "miss_timer",
        "misses",
        "misses_key",
        "unavailable_key",
        "user",
    )

    def __init__(self, group: _Location, user: str, miss_capacity: int) -> None:
        self.group = group
        self.user = user
        self.failures = 0
        self.goods = 0
        self.down = False
        self.down_since: datetime | None = None
        self.fail_lines: deque[_Line] = deque(maxlen=_PER_TARGET_LINES)
        self.misses = RecentInstants(miss_capacity)
        self.miss_lines: deque[_Line] = deque(maxlen=_PER_TARGET_LINES)
        self.last_miss_at: datetime | None = None
        self.miss_timer = False
        key = (group.customer, group.service, group.location, user)
        self.unavailable_key = ConditionKey(*key, Rule.UNAVAILABLE)
        self.misses_key = ConditionKey(*key, Rule.MISSES)


class Classifier:
    """Rolling state per target and location; the rules above turn it into conditions."""

    def __init__(
        self,
        thresholds: Thresholds,
        topology: Topology,
        services: Iterable[Service] = _DEFAULT_SERVICES,
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
            # A good round of a user that is up, with no failure to forget and nobody held,
            # changes nothing: the usual case, decided without the bookkeeping.
            quiet = ok and not target.failures and not target.down and not target.group.held
            if result.source is not Source.CALL and not quiet:
                self._round(target, result)
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

    def take_changes(self) -> ConditionChanges:
        """Conditions started/changed and cleared since the last call (for incremental apply)."""
        pending, self._pending = self._pending, {}
        started = tuple(c for c in pending.values() if c is not None)
        cleared = tuple(key for key, c in pending.items() if c is None)
        return ConditionChanges(started=started, cleared=cleared)

    def resume(self, conditions: Iterable[Condition], now: datetime) -> None:
        """Hold again the conditions that held before a restart (``engine.conditions_held()``).

        They are not reported as started (the engine knows them); the recovery rules run on
        them as on any other: a user or location is down until ``recovery_rounds`` good rounds,
        a degraded location is judged from the calls seen from now on, and a miss condition
        clears ``miss_quiet_period`` after ``now`` unless a new miss arrives.
        """
        self._advance(now)
        for condition in conditions:
            group = self._groups.get((condition.customer, condition.service, condition.location))
            if group is None:
                continue
            kind = condition.kind
            if kind is ConditionKind.LOCATION_UNAVAILABLE:
                for member in group.targets:
                    self._assume_down(member, condition.since)
                group.location_down = True
            elif kind is ConditionKind.LOCATION_DEGRADED:
                group.degraded = True
                group.healthy_since = None
                if group.counts is None:
                    group.counts = MinuteCounts(self._minutes)
                if not group.rate_timer:
                    group.rate_timer = True
                    self._schedule(_minute_start(_minute(now) + 1), group)
            else:
                target = next((t for t in group.targets if t.user == condition.user), None)
                if target is None:
                    continue
                if kind is ConditionKind.USER_UNAVAILABLE:
                    self._assume_down(target, condition.since)
                else:
                    target.last_miss_at = max(now, target.last_miss_at or now)
                    if not target.miss_timer:
                        target.miss_timer = True
                        self._schedule(target.last_miss_at + self._t.miss_quiet_period, target)
            self._active[condition.key] = condition

    def _assume_down(self, target: _Target, since: datetime) -> None:
        if target.down:
            return
        group = target.group
        short = self._t.failed_rounds - 1
        if short and target.failures == short:
            group.almost -= 1
        target.down = True
        target.down_since = since
        target.failures = max(target.failures, self._t.failed_rounds)
        target.goods = 0
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

    # --- failures -----------------------------------------------------------------------------

    def _round(self, target: _Target, result: ProbeResult) -> None:
        group = target.group
        if group.held and target in group.held:
            self._release(group)  # a held user's next round: its condition waits no longer
        if self._count(target, result):
            self._settle(group, target, result.at)
        if group.held and not self._looks_location_wide(group):
            self._release(group)

    def _count(self, target: _Target, result: ProbeResult) -> bool:
        """Update the counters of one round; True when the target went down, up or recovering."""
        group = target.group
        short = self._t.failed_rounds - 1  # failures of a user one round short of down
        if result.ok:
            if short and not target.down and target.failures == short:
                group.almost -= 1
            target.failures = 0
            if not target.down:
                return False
            target.goods += 1
            if target.goods == 1:
                group.failing_down -= 1
            if target.goods >= self._t.recovery_rounds:
                target.down = False
                target.goods = 0
                group.down -= 1
            return True
        target.failures += 1
        target.fail_lines.append((result.at, target.user, result.evidence))
        if target.down:
            if not target.goods:
                return False  # still failing: nothing changes
            target.goods = 0
            group.failing_down += 1
            return True
        if target.failures > short:
            if short:
                group.almost -= 1
            target.down = True
            target.down_since = result.at
            group.down += 1
            group.failing_down += 1
            return True
        if target.failures == short:
            group.almost += 1
        return False

    def _looks_location_wide(self, group: _Location) -> bool:
        """Every user is down and failing, or one failed round short of it."""
        return group.almost > 0 and group.failing_down + group.almost == len(group.targets)

    def _release(self, group: _Location) -> None:
        held, group.held = group.held, set()
        if not group.location_down:
            for member in group.targets:
                if member in held and member.down:
                    self._put(self._user_condition(member))

    def _settle(self, group: _Location, target: _Target, at: datetime) -> None:
        if group.location_down:
            if group.down == 0:
                group.location_down = False
                self._drop(group.unavailable_key)
            elif group.down == len(group.targets) or group.failing_down == 0:
                self._show(group.unavailable_key, recovering=group.failing_down == 0)
            else:
                group.location_down = False
                self._drop(group.unavailable_key)
                for member in group.targets:
                    if member.down:
                        self._put(self._user_condition(member))
            return
        if group.failing_down == len(group.targets):
            group.location_down = True
            group.held.clear()
            for member in group.targets:
                self._drop(member.unavailable_key)
            self._put(self._location_condition(group, at))
            return
        if not target.down:
            self._drop(target.unavailable_key)
        elif target.unavailable_key in self._active:
            self._show(target.unavailable_key, recovering=target.goods > 0)
        elif self._looks_location_wide(group):
            group.held.add(target)
        else:
            self._put(self._user_condition(target))

    def _user_condition(self, target: _Target) -> Condition:
        group = target.group
        lines = tuple(_log_line(group.location, line) for line in target.fail_lines)
        last = target.fail_lines[-1][2] if target.fail_lines else "no answer"
        assert target.down_since is not None
        return Condition(
            customer=group.customer,
            service=group.service,
            location=group.location,
            user=target.user,
            kind=ConditionKind.USER_UNAVAILABLE,
            priority=ConditionKind.USER_UNAVAILABLE.priority,
            since=target.down_since,
            reason=(
                f"{self._t.failed_rounds} consecutive failed rounds for {target.user} "
                f"at {group.location}: {last}"
            ),
            evidence=lines,
            recovering=target.goods > 0,
        )

    def _location_condition(self, group: _Location, at: datetime) -> Condition:
        latest = sorted(
            (member.fail_lines[-1] for member in group.targets if member.fail_lines),
            key=lambda line: line[0],
        )[-EVIDENCE_LINES:]
        last = latest[-1][2] if latest else "no answer"
        return Condition(
            customer=group.customer,
            service=group.service,
            location=group.location,
            user=None,
            kind=ConditionKind.LOCATION_UNAVAILABLE,
            priority=ConditionKind.LOCATION_UNAVAILABLE.priority,
            since=at,
            reason=(
                f"{self._t.failed_rounds} consecutive failed rounds for every user at "
                f"{group.location} ({len(group.targets)} users): {last}"
            ),
            evidence=tuple(_log_line(group.location, line) for line in latest),
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
