"""The SLA clocks of one incident and the instants of their warnings and breaches.

A clock warns when ``policy.warning_at`` (75%) of its target's support time has elapsed, and
breaches at 100% (its due instant). The due instants come from :mod:`sla.deadlines`, the one
derivation of the SLA's deadlines; a clock adds where it starts counting and when it warns.
A stopped clock (responded, resolved) keeps its due instant and raises nothing more. Nothing
here knows the time of day: callers pass ``now`` and keep the set of events already fired, so a
scheduler can sleep until ``next_timer_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sla.deadlines import compute_deadlines, next_update_due
from sla.priority import Priority
from sla.targets import SlaPolicy


class ClockName(StrEnum):
    RESPONSE = "response"
    UPDATE = "update"
    REPAIR = "repair"


class TimerEventKind(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True, slots=True)
class SlaClock:
    """One running SLA clock.

    ``started_at`` is where the clock starts counting support time: the report (or update)
    instant for response and update, ``repair_clock_start`` for repair. ``warn_at`` is when
    ``warning_at`` of the support time from ``started_at`` to ``due`` has elapsed.
    ``stopped_at``: when a response or the resolution stopped it (``None``: running).
    """

    name: ClockName
    started_at: datetime
    warn_at: datetime
    due: datetime
    stopped_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def stop(self, at: datetime) -> SlaClock:
        """This clock stopped at ``at`` (a stopped clock keeps its first stop)."""
        return self if self.stopped_at is not None else replace(self, stopped_at=at)


@dataclass(frozen=True, slots=True)
class TimerEvent:
    clock: ClockName
    kind: TimerEventKind
    at: datetime


_CLOCK_ORDER = {ClockName.RESPONSE: 0, ClockName.UPDATE: 1, ClockName.REPAIR: 2}
_KIND_ORDER = {TimerEventKind.WARNING: 0, TimerEventKind.BREACH: 1}


def _support_clock(
    policy: SlaPolicy, name: ClockName, at: datetime, amount: timedelta, due: datetime
) -> SlaClock:
    calendar = policy.calendar
    return SlaClock(
        name=name,
        started_at=calendar.next_opening(at),
        warn_at=calendar.add_support(at, amount * policy.warning_at),
        due=due,
    )


def start_clocks(policy: SlaPolicy, priority: Priority, at: datetime) -> dict[ClockName, SlaClock]:
    """The clocks ``priority`` sets, counted from ``at``; targets that are not set are absent."""
    target = policy.target(priority)
    calendar = policy.calendar
    deadlines = compute_deadlines(policy, priority, at)
    clocks: dict[ClockName, SlaClock] = {}
    if target.response is not None and deadlines.response_due is not None:
        clocks[ClockName.RESPONSE] = _support_clock(
            policy, ClockName.RESPONSE, at, target.response, deadlines.response_due
        )
    if target.update is not None and deadlines.update_due is not None:
        if target.update == target.response and ClockName.RESPONSE in clocks:
            clocks[ClockName.UPDATE] = replace(clocks[ClockName.RESPONSE], name=ClockName.UPDATE)
        else:
            clocks[ClockName.UPDATE] = _support_clock(
                policy, ClockName.UPDATE, at, target.update, deadlines.update_due
            )
    if deadlines.repair_due is not None:
        start = calendar.repair_clock_start(at)
        due = deadlines.repair_due
        span = calendar.support_between(start, due)
        clocks[ClockName.REPAIR] = SlaClock(
            name=ClockName.REPAIR,
            started_at=start,
            warn_at=calendar.add_support(start, span * policy.warning_at),
            due=due,
        )
    return clocks


def restart_update_clock(policy: SlaPolicy, priority: Priority, at: datetime) -> SlaClock | None:
    """A fresh update clock after an update or response at ``at`` (None: no update target)."""
    update = policy.target(priority).update
    due = next_update_due(policy, priority, at)
    if update is None or due is None:
        return None
    return _support_clock(policy, ClockName.UPDATE, at, update, due)


def _pending(
    clocks: Mapping[ClockName, SlaClock], fired: AbstractSet[tuple[ClockName, TimerEventKind]]
) -> list[TimerEvent]:
    events = []
    for clock in clocks.values():
        if not clock.running:
            continue
        for kind, at in (
            (TimerEventKind.WARNING, clock.warn_at),
            (TimerEventKind.BREACH, clock.due),
        ):
            if (clock.name, kind) not in fired:
                events.append(TimerEvent(clock=clock.name, kind=kind, at=at))
    events.sort(key=lambda e: (e.at, _CLOCK_ORDER[e.clock], _KIND_ORDER[e.kind]))
    return events


def due_timer_events(
    clocks: Mapping[ClockName, SlaClock],
    fired: AbstractSet[tuple[ClockName, TimerEventKind]],
    now: datetime,
) -> list[TimerEvent]:
    """Warnings and breaches due at or before ``now`` and not fired yet, in time order."""
    return [event for event in _pending(clocks, fired) if event.at <= now]


def next_timer_at(
    clocks: Mapping[ClockName, SlaClock],
    fired: AbstractSet[tuple[ClockName, TimerEventKind]],
) -> datetime | None:
    """The earliest instant a not-yet-fired warning or breach is due (may be in the past)."""
    pending = _pending(clocks, fired)
    return pending[0].at if pending else None


def due_next(
    deadlines: Iterable[tuple[datetime, str]], now: datetime
) -> tuple[datetime, str] | None:
    """Of an open incident's pending deadlines (due, name), the one it meets next: the one due
    first from ``now`` on, or, when every one is overdue, the one overdue longest. None when
    none is pending. The one rule for the console, the API, the CLI and ``/metrics``."""
    pending = list(deadlines)
    if not pending:
        return None
    ahead = [item for item in pending if item[0] >= now]
    return min(ahead) if ahead else min(pending)
