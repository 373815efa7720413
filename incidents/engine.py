"""The incident state machine: conditions and people's actions in, incident state and events out.

Pure and synchronous: every method takes ``now``; nothing here sleeps, reads a clock or does I/O.

Rules (``classification.md`` and ``sla.md``):

- One open automatic incident per customer. A condition that holds and is not yet in it joins it
  (``scope_grew``), or opens it (``opened``). Its priority is the highest of its scope; a higher
  one raises it (``raised``) and restarts the open SLA clocks from that moment with the new
  priority's targets. It never lowers itself; a person may (``change_priority``).
- The classifier's recovery rules decide when a condition has cleared; the incident resolves
  itself (``resolved``, ``resolved_by`` auto) when the last condition of its scope clears. A
  condition that clears and returns while the incident is open becomes active again in the same
  scope (timeline only, no event): flapping never opens a second incident.
- People: ``acknowledge`` (the response; stops the response clock and restarts the update clock),
  ``update`` (restarts the update clock), ``resolve`` (stops every clock), ``reopen`` (fresh
  deadlines from the reopening; it stays open until a person resolves it or the conditions in
  its scope, old or new, clear again), ``change_priority`` (reason required; open clocks restart),
  ``open_question`` (a P4, not automatic). An action that does not apply in the incident's state
  (acknowledging twice, resolving a resolved incident) changes nothing and returns no events; an
  unknown incident, or reopening while the customer has another open automatic incident, raises
  ``IncidentError``.
- A person's resolve while conditions in the scope still hold raises ``ConditionsStillHold``
  unless ``force``: forced, those conditions are forgotten (their scope entries close at the
  resolve; ``take_forgotten()`` gives their keys for ``Classifier.forget``, which starts their
  series again from nothing). A forgotten condition that meets its threshold again opens a new
  incident (or joins the customer's open one) whose timeline names the incident resolved before.
  A person's resolve never leaves a live problem unwatched. The resolved incident keeps the
  keys it forgot (``Incident.forgotten``) until they come back, so the link survives a restart.
- Maintenance: a new condition covered by an active window opens nothing and joins nothing; it
  is reported once (``maintenance_suppressed``, ``incident`` None) and listed by
  ``in_maintenance()``. If it still holds when the window ends it opens (or joins) the
  customer's incident at the window's end instant. Windows passed to ``apply`` are remembered;
  ``tick`` and ``next_due`` also cover window ends.
- Timers: ``tick(now)`` raises the warnings (75%) and breaches (100%) that are due on open
  incidents, each once per clock run; breaches are recorded on the incident.
- Memory: with ``keep_resolved=N`` the engine holds every open incident and only the ``N``
  incidents resolved last (what a restart loads), so a service that runs for months does not
  grow with its history. It lets go of older ones when a step's changes are handed over
  (``take_changed``, once per monitor step); one let go is unknown to the engine
  (``IncidentError``) and stays in the database. ``None`` (the default, ``simulate``) keeps
  every incident.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from heapq import heappop, heappush
from itertools import count

from classifier.conditions import Condition, ConditionChanges, ConditionKey, ConditionKind
from incidents.model import (
    ConditionsStillHold,
    Incident,
    IncidentError,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    MaintenanceWindow,
    ResolvedBy,
    ScopeEntry,
)
from sla.priority import Priority
from sla.targets import SlaPolicy
from sla.timers import (
    ClockName,
    TimerEventKind,
    due_timer_events,
    next_timer_at,
    restart_update_clock,
    start_clocks,
)
from sla.words import service_name

_SHOWN_CONDITIONS = 3


class _State(Enum):
    IN_INCIDENT = "in incident"  # in the scope of the open incident ``number``
    SUPPRESSED = "suppressed"  # covered by maintenance until ``until``


@dataclass(slots=True)
class _Held:
    condition: Condition
    state: _State
    number: int | None = None
    until: datetime | None = None


_New = dict[str, list[tuple[Condition, datetime]]]
_Raises = dict[int, tuple[Priority, Condition, datetime]]  # incident -> highest new priority


class IncidentEngine:
    """Owns every incident; one instance per process (state restored from ``Incident.to_dict``)."""

    def __init__(
        self,
        policy: SlaPolicy,
        incidents: Iterable[Incident] = (),
        next_number: int | None = None,
        keep_resolved: int | None = None,
    ) -> None:
        if keep_resolved is not None and keep_resolved < 1:
            raise ValueError("keep_resolved must be at least 1 (or None: keep every incident)")
        self.policy = policy
        self._incidents: dict[int, Incident] = {}
        # The resolved incidents held, in the order they were resolved (oldest first).
        self._resolved: dict[int, None] = {}
        self._keep_resolved = keep_resolved
        self._open: dict[int, Incident] = {}
        self._open_auto: dict[str, Incident] = {}
        self._holding: dict[ConditionKey, _Held] = {}
        self._suppression_ends: list[tuple[datetime, int, ConditionKey]] = []
        self._seq = count()
        self._windows: tuple[MaintenanceWindow, ...] = ()
        self._changed: dict[int, Incident] = {}
        self._forgotten: list[ConditionKey] = []  # for ``Classifier.forget``
        # A forgotten condition's key -> the incident whose resolve forgot it (its
        # ``Incident.forgotten`` keeps the key across restarts), and the words naming it.
        self._follows: dict[ConditionKey, tuple[int, str]] = {}
        restored = sorted(incidents, key=lambda i: i.number)
        for incident in restored:
            self._restore(incident)
        highest = max((i.number for i in restored), default=0)
        self._next_number = max(highest + 1, next_number or 1)
        self._forget_resolved()

    # --- reading ---------------------------------------------------------------------------

    def incident(self, number: int) -> Incident:
        try:
            return self._incidents[number]
        except KeyError:
            raise IncidentError(f"incident {number} does not exist") from None

    def incidents(self) -> list[Incident]:
        return list(self._incidents.values())

    def open_incidents(self) -> list[Incident]:
        return list(self._open.values())

    def open_incident(self, customer: str) -> Incident | None:
        """The customer's open automatic incident."""
        return self._open_auto.get(customer)

    def conditions_held(self) -> list[Condition]:
        """Conditions in open incidents: after a restart, give them to ``Classifier.resume``
        so that their clearing is still reported."""
        return [h.condition for h in self._holding.values() if h.state is not _State.SUPPRESSED]

    def in_maintenance(self) -> list[Condition]:
        """Conditions held back by a maintenance window (shown as maintenance)."""
        return [h.condition for h in self._holding.values() if h.state is _State.SUPPRESSED]

    @property
    def next_number(self) -> int:
        return self._next_number

    def take_forgotten(self) -> list[ConditionKey]:
        """Keys of the conditions a forced resolve forgot since the last call (to give to
        ``Classifier.forget``)."""
        forgotten, self._forgotten = self._forgotten, []
        return forgotten

    def take_changed(self) -> list[Incident]:
        """Incidents changed since the last call (to persist), in number order."""
        changed, self._changed = self._changed, {}
        self._forget_resolved(spare=changed)  # held until the step's changes are handed over
        return [changed[number] for number in sorted(changed)]

    def next_due(self) -> datetime | None:
        """When ``tick`` has work next: an SLA warning or breach, or a maintenance window end."""
        instants = [
            at
            for incident in self._open.values()
            if (at := next_timer_at(incident.clocks, incident.fired)) is not None
        ]
        ends = self._suppression_ends
        while ends and not self._is_current_end(ends[0]):
            heappop(ends)
        if ends:
            instants.append(ends[0][0])
        return min(instants, default=None)

    # --- conditions --------------------------------------------------------------------------

    def apply(
        self,
        conditions: Iterable[Condition],
        now: datetime,
        maintenance: Iterable[MaintenanceWindow] | None = None,
    ) -> list[IncidentEvent]:
        """Every condition that holds now (e.g. ``Classifier.conditions(now)``).

        A condition known to the engine and absent here has cleared. ``maintenance``: the
        announced windows (None: the ones given last time).
        """
        current = {condition.key: condition for condition in conditions}
        cleared = [key for key in self._holding if key not in current]
        started = [
            condition
            for key, condition in current.items()
            if (held := self._holding.get(key)) is None or held.condition != condition
        ]
        return self._apply(started, cleared, now, maintenance)

    def apply_changes(
        self,
        changes: ConditionChanges,
        now: datetime,
        maintenance: Iterable[MaintenanceWindow] | None = None,
    ) -> list[IncidentEvent]:
        """Only what changed (``Classifier.take_changes()``): O(changes), for busy pipelines."""
        return self._apply(list(changes.started), list(changes.cleared), now, maintenance)

    def _apply(
        self,
        started: list[Condition],
        cleared: list[ConditionKey],
        now: datetime,
        maintenance: Iterable[MaintenanceWindow] | None,
    ) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        new: _New = {}
        windows_changed = False
        if maintenance is not None and (windows := tuple(maintenance)) != self._windows:
            self._windows, windows_changed = windows, True
        emptied: set[int] = set()
        for key in sorted(cleared):
            self._clear(key, now, emptied)
        raise_to: _Raises = {}
        for condition in sorted(started, key=lambda c: c.key):
            self._upsert(condition, now, new, raise_to, events)
        self._release_maintenance(now, windows_changed, new)
        for customer, items in new.items():
            self._open_or_join(customer, items, events, raise_to)
        for number, (priority, condition, at) in sorted(raise_to.items()):
            incident = self._incidents[number]
            if incident.is_open and priority < incident.priority:
                events.append(self._raise(incident, priority, at, condition))
        for number in sorted(emptied):
            incident = self._incidents[number]
            if incident.is_open and not incident.active_scope():
                events.append(self._auto_resolve(incident, now))
        return events

    def _clear(self, key: ConditionKey, now: datetime, emptied: set[int]) -> None:
        held = self._holding.pop(key, None)
        if held is None or held.number is None:
            return
        incident = self._incidents[held.number]
        entry = incident.scope.get(key)
        if entry is None or entry.cleared_at is not None:
            return
        entry.cleared_at = now
        if held.state is _State.IN_INCIDENT:
            incident.note(now, "condition_cleared", f"cleared: {_describe(held.condition)}")
            emptied.add(incident.number)
        self._changed[incident.number] = incident

    def _upsert(
        self,
        condition: Condition,
        now: datetime,
        new: _New,
        raise_to: _Raises,
        events: list[IncidentEvent],
    ) -> None:
        key = condition.key
        held = self._holding.get(key)
        if held is None:
            window = self._covering(condition, now)
            if window is None:
                new.setdefault(condition.customer, []).append((condition, now))
            else:
                self._suppress(condition, window, now, events)
            return
        previous, held.condition = held.condition, condition
        if held.state is not _State.IN_INCIDENT:
            return
        if condition.kind is previous.kind and condition.priority == previous.priority:
            return
        assert held.number is not None
        incident = self._incidents[held.number]
        incident.scope[key].refresh(condition)
        incident.note(now, "condition_changed", f"now {_describe(condition)}")
        self._changed[incident.number] = incident
        _note_raise(raise_to, incident.number, condition, now)

    def _open_or_join(
        self,
        customer: str,
        items: list[tuple[Condition, datetime]],
        events: list[IncidentEvent],
        raise_to: _Raises,
    ) -> None:
        items.sort(key=lambda item: (item[1], item[0].priority, item[0].key))
        incident = self._open_auto.get(customer)
        if incident is None:
            at = items[0][1]
            top = min((condition for condition, _ in items), key=lambda c: c.priority)
            incident = self._new_incident(customer, True, top.priority, at, headline(top))
            for condition, joined_at in items:
                self._join(incident, condition, joined_at)
            detail = f"P{int(top.priority)} {top.priority.label}: " + _summary(
                [condition for condition, _ in items]
            )
            detail += self._following([condition for condition, _ in items])
            incident.note(at, IncidentEventKind.OPENED, detail)
            events.append(self._event(IncidentEventKind.OPENED, incident, at, detail))
            return
        joined: list[Condition] = []
        for condition, at in items:
            entry = incident.scope.get(condition.key)
            self._join(incident, condition, at)
            follows = self._following([condition])
            if entry is None:
                joined.append(condition)
                detail = f"joined: {_describe(condition)}{follows}"
                incident.note(at, IncidentEventKind.SCOPE_GREW, detail)
            else:
                incident.note(
                    at, "condition_returned", f"returned: {_describe(condition)}{follows}"
                )
            _note_raise(raise_to, incident.number, condition, at)
        if joined:
            at = max(at for _, at in items)
            events.append(self._event(IncidentEventKind.SCOPE_GREW, incident, at, _summary(joined)))

    def _following(self, conditions: list[Condition]) -> str:
        """ "; follows incident N, resolved by ..." for conditions a forced resolve forgot."""
        words = []
        for condition in conditions:
            follows = self._follows.pop(condition.key, None)
            if follows is None:
                continue
            number, text = follows
            self._unforget(number, condition.key)
            words.append(text)
        return "".join(f"; {w}" for w in dict.fromkeys(words))

    def _unforget(self, number: int, key: ConditionKey) -> None:
        """The resolved incident ``number`` no longer waits for ``key`` to come back."""
        incident = self._incidents.get(number)
        if incident is None:  # resolved long ago and no longer held (``keep_resolved``)
            return
        if key in incident.forgotten:
            incident.forgotten.remove(key)
            self._changed[number] = incident

    def _join(self, incident: Incident, condition: Condition, at: datetime) -> None:
        key = condition.key
        entry = incident.scope.get(key)
        if entry is None:
            incident.scope[key] = ScopeEntry.of(condition, joined_at=at)
        else:
            entry.cleared_at = None
            entry.refresh(condition)
        self._holding[key] = _Held(condition, _State.IN_INCIDENT, number=incident.number)
        self._changed[incident.number] = incident

    def _raise(
        self, incident: Incident, priority: Priority, at: datetime, condition: Condition
    ) -> IncidentEvent:
        old = incident.priority
        incident.priority = priority
        incident.title = headline(condition)  # in the SLA's words, as a new incident's
        self._restart_clocks(incident, at)
        detail = f"P{int(old)} → P{int(priority)}: {_describe(condition)}"
        incident.note(at, IncidentEventKind.RAISED, detail)
        self._changed[incident.number] = incident
        return self._event(IncidentEventKind.RAISED, incident, at, detail)

    def _auto_resolve(self, incident: Incident, now: datetime) -> IncidentEvent:
        detail = f"every condition cleared ({len(incident.scope)} in scope)"
        self._close(incident, now, ResolvedBy.AUTO, detail, actor=None)
        return self._event(IncidentEventKind.RESOLVED, incident, now, detail)

    # --- maintenance -------------------------------------------------------------------------

    def _covering(self, condition: Condition, now: datetime) -> MaintenanceWindow | None:
        covering = [w for w in self._windows if w.covers(condition, now)]
        return max(covering, key=lambda w: w.end) if covering else None

    def _suppress(
        self,
        condition: Condition,
        window: MaintenanceWindow,
        now: datetime,
        events: list[IncidentEvent],
    ) -> None:
        self._holding[condition.key] = _Held(condition, _State.SUPPRESSED, until=window.end)
        heappush(self._suppression_ends, (window.end, next(self._seq), condition.key))
        local_end = self.policy.calendar.local(window.end)
        detail = f"{_describe(condition)}; maintenance until {local_end:%Y-%m-%d %H:%M %Z}"
        events.append(
            IncidentEvent(
                kind=IncidentEventKind.MAINTENANCE_SUPPRESSED,
                incident=None,
                customer=condition.customer,
                at=now,
                priority=condition.priority,
                detail=detail,
            )
        )

    def _is_current_end(self, item: tuple[datetime, int, ConditionKey]) -> bool:
        held = self._holding.get(item[2])
        return held is not None and held.state is _State.SUPPRESSED and held.until == item[0]

    def _release_maintenance(self, now: datetime, recheck_all: bool, new: _New) -> None:
        """Suppressed conditions whose window ended (or was withdrawn) open their incident."""
        candidates: list[ConditionKey] = []
        if recheck_all:
            candidates = [k for k, h in self._holding.items() if h.state is _State.SUPPRESSED]
        ends = self._suppression_ends
        while ends and ends[0][0] <= now:
            item = heappop(ends)
            if self._is_current_end(item):
                candidates.append(item[2])
        for key in candidates:
            held = self._holding.get(key)
            if held is None or held.state is not _State.SUPPRESSED:
                continue
            window = self._covering(held.condition, now)
            if window is not None:
                if window.end != held.until:
                    held.until = window.end
                    heappush(ends, (window.end, next(self._seq), key))
                continue
            del self._holding[key]
            until = held.until
            at = until if until is not None and until <= now else now
            new.setdefault(held.condition.customer, []).append((held.condition, at))

    # --- people ------------------------------------------------------------------------------

    def acknowledge(self, number: int, now: datetime, actor: str) -> list[IncidentEvent]:
        """The first response: stops the response clock, and the update clock starts again."""
        incident = self.incident(number)
        if incident.status is not IncidentStatus.OPEN:
            return []
        incident.status = IncidentStatus.ACKNOWLEDGED
        incident.acknowledged_at = now
        self._stop_clock(incident, ClockName.RESPONSE, now)
        self._restart_update(incident, now)
        detail = f"acknowledged by {actor}"
        incident.note(now, IncidentEventKind.ACKNOWLEDGED, detail, actor)
        self._changed[number] = incident
        return [self._event(IncidentEventKind.ACKNOWLEDGED, incident, now, detail, actor)]

    def update(self, number: int, now: datetime, actor: str, text: str) -> list[IncidentEvent]:
        """A progress update to the customer: the update clock (TTTU) starts again."""
        incident = self.incident(number)
        if incident.is_open:
            self._restart_update(incident, now)
        detail = text or f"update by {actor}"
        incident.note(now, IncidentEventKind.UPDATED, detail, actor)
        self._changed[number] = incident
        return [self._event(IncidentEventKind.UPDATED, incident, now, detail, actor)]

    def change_priority(
        self, number: int, priority: Priority, now: datetime, actor: str, reason: str
    ) -> list[IncidentEvent]:
        """A person sets the priority (also lower); open deadlines restart from ``now``."""
        if not reason.strip():
            raise IncidentError("changing the priority needs a reason")
        incident = self.incident(number)
        priority = Priority(priority)
        if priority == incident.priority:
            return []
        old = incident.priority
        incident.priority = priority
        if incident.is_open:
            self._restart_clocks(incident, now)
        detail = f"P{int(old)} → P{int(priority)} by {actor}: {reason}"
        incident.note(now, IncidentEventKind.PRIORITY_CHANGED, detail, actor)
        self._changed[number] = incident
        return [self._event(IncidentEventKind.PRIORITY_CHANGED, incident, now, detail, actor)]

    def resolve(
        self, number: int, now: datetime, actor: str, reason: str = "", force: bool = False
    ) -> list[IncidentEvent]:
        """A person resolves the incident (every clock stops).

        While conditions in its scope still hold this needs ``force`` (else
        ``ConditionsStillHold``): they are then forgotten, and the reason and what still held
        go on the timeline.
        """
        incident = self.incident(number)
        if not incident.is_open:
            return []
        holding = [
            held.condition
            for entry in incident.active_scope()
            if (held := self._holding.get(entry.key)) is not None
            and held.number == number
            and held.state is _State.IN_INCIDENT
        ]
        if holding and not force:
            raise ConditionsStillHold(number, holding)
        detail = f"resolved by {actor}" + (f": {reason}" if reason else "")
        if holding:
            still = _summary(holding)
            detail += f"; forced while still held, forgotten and watched anew: {still}"
            for condition in holding:
                key = condition.key
                del self._holding[key]
                incident.scope[key].cleared_at = now
                self._forgotten.append(key)
                earlier = self._follows.get(key)
                if earlier is not None:
                    self._unforget(earlier[0], key)
                incident.forgotten.append(key)
                self._follows[key] = (number, _follows_words(number, actor, condition))
        self._close(incident, now, ResolvedBy.PERSON, detail, actor)
        return [self._event(IncidentEventKind.RESOLVED, incident, now, detail, actor)]

    def reopen(self, number: int, now: datetime, actor: str, text: str = "") -> list[IncidentEvent]:
        """Open a resolved incident again, with fresh deadlines from ``now``."""
        incident = self.incident(number)
        if incident.is_open:
            return []
        if incident.automatic:
            other = self._open_auto.get(incident.customer)
            if other is not None:
                raise IncidentError(
                    f"customer {incident.customer!r} already has open incident {other.number}"
                )
            self._open_auto[incident.customer] = incident
        self._open[number] = incident
        self._resolved.pop(number, None)
        incident.status = IncidentStatus.OPEN
        incident.acknowledged_at = incident.resolved_at = incident.resolved_by = None
        self._restart_clocks(incident, now)
        detail = f"reopened by {actor}" + (f": {text}" if text else "")
        incident.note(now, IncidentEventKind.REOPENED, detail, actor)
        self._changed[number] = incident
        return [self._event(IncidentEventKind.REOPENED, incident, now, detail, actor)]

    def open_question(
        self, customer: str, now: datetime, actor: str, text: str
    ) -> list[IncidentEvent]:
        """A question, not an impact on the service: a P4 opened by a person."""
        incident = self._new_incident(customer, False, Priority.LOW, now, text)
        detail = f"question from {actor}: {text}"
        incident.note(now, IncidentEventKind.OPENED, detail, actor)
        return [self._event(IncidentEventKind.OPENED, incident, now, detail, actor)]

    def note(
        self, number: int, now: datetime, kind: str, detail: str, actor: str | None = None
    ) -> None:
        """A timeline entry from outside the engine (e.g. ``alert_sent``)."""
        incident = self.incident(number)
        incident.note(now, kind, detail, actor)
        self._changed[number] = incident

    # --- timers ------------------------------------------------------------------------------

    def tick(
        self, now: datetime, maintenance: Iterable[MaintenanceWindow] | None = None
    ) -> list[IncidentEvent]:
        """Maintenance windows that ended, then SLA warnings and breaches due at ``now``.

        ``maintenance``: the announced windows, if they changed (None: the ones given last).
        """
        events = self._apply([], [], now, maintenance)
        for incident in list(self._open.values()):
            for timer in due_timer_events(incident.clocks, incident.fired, now):
                incident.fired.add((timer.clock, timer.kind))
                kind = IncidentEventKind.of_timer(timer.clock, timer.kind)
                local_due = self.policy.calendar.local(incident.clocks[timer.clock].due)
                if timer.kind is TimerEventKind.BREACH:
                    if timer.clock not in incident.breaches:
                        incident.breaches.append(timer.clock)
                    detail = f"{timer.clock} was due {local_due:%Y-%m-%d %H:%M %Z}"
                else:
                    share = f"{self.policy.warning_at:.0%}"
                    detail = (
                        f"{share} of the {timer.clock} time has passed; "
                        f"due {local_due:%Y-%m-%d %H:%M %Z}"
                    )
                incident.note(timer.at, kind, detail)
                self._changed[incident.number] = incident
                events.append(self._event(kind, incident, timer.at, detail))
        return events

    # --- helpers -----------------------------------------------------------------------------

    def _new_incident(
        self, customer: str, automatic: bool, priority: Priority, at: datetime, title: str
    ) -> Incident:
        number = self._next_number
        self._next_number += 1
        incident = Incident(
            number=number,
            customer=customer,
            automatic=automatic,
            priority=priority,
            status=IncidentStatus.OPEN,
            opened_at=at,
            title=title,
        )
        self._restart_clocks(incident, at)
        self._incidents[number] = incident
        self._open[number] = incident
        if automatic:
            self._open_auto[customer] = incident
        self._changed[number] = incident
        return incident

    def _restart_clocks(self, incident: Incident, at: datetime) -> None:
        """Every open deadline again from ``at`` with the incident's priority (sla.md)."""
        clocks = start_clocks(self.policy, incident.priority, at)
        if incident.acknowledged_at is not None:  # responded: that clock stays stopped
            responded = incident.clocks.get(ClockName.RESPONSE)
            if responded is not None:
                clocks[ClockName.RESPONSE] = responded.stop(incident.acknowledged_at)
            else:
                clocks.pop(ClockName.RESPONSE, None)
        incident.clocks = clocks
        incident.fired = set()

    def _restart_update(self, incident: Incident, at: datetime) -> None:
        self._stop_clock(incident, ClockName.UPDATE, at)
        clock = restart_update_clock(self.policy, incident.priority, at)
        if clock is not None:
            incident.clocks[ClockName.UPDATE] = clock

    @staticmethod
    def _stop_clock(incident: Incident, name: ClockName, at: datetime) -> None:
        clock = incident.clocks.get(name)
        if clock is not None:
            incident.clocks[name] = clock.stop(at)
        incident.fired = {(clock, kind) for clock, kind in incident.fired if clock is not name}

    def _close(
        self, incident: Incident, now: datetime, by: ResolvedBy, detail: str, actor: str | None
    ) -> None:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = now
        incident.resolved_by = by
        incident.clocks = {name: clock.stop(now) for name, clock in incident.clocks.items()}
        incident.fired = set()
        incident.note(now, IncidentEventKind.RESOLVED, detail, actor)
        del self._open[incident.number]
        if self._open_auto.get(incident.customer) is incident:
            del self._open_auto[incident.customer]
        self._changed[incident.number] = incident
        self._resolved[incident.number] = None

    def _forget_resolved(self, spare: Container[int] = ()) -> None:
        """Let go of the incidents resolved longest ago beyond ``keep_resolved``, sparing
        those of the step being handed over (its caller still reads them)."""
        keep = self._keep_resolved
        if keep is None:
            return
        excess = len(self._resolved) - keep
        for number in list(self._resolved):
            if excess <= 0:
                break
            if number in spare:
                continue
            del self._resolved[number]
            del self._incidents[number]
            excess -= 1

    @staticmethod
    def _event(
        kind: IncidentEventKind,
        incident: Incident,
        at: datetime,
        detail: str,
        actor: str | None = None,
    ) -> IncidentEvent:
        return IncidentEvent(
            kind=kind,
            incident=incident.number,
            customer=incident.customer,
            at=at,
            priority=incident.priority,
            detail=detail,
            actor=actor,
            automatic=incident.automatic,
        )

    def _restore(self, incident: Incident) -> None:
        self._incidents[incident.number] = incident
        if not incident.is_open:
            self._resolved[incident.number] = None
        if incident.is_open:
            self._open[incident.number] = incident
            if incident.automatic:
                if incident.customer in self._open_auto:
                    raise IncidentError(
                        f"customer {incident.customer!r} has two open automatic incidents"
                    )
                self._open_auto[incident.customer] = incident
        # A resolved incident holds nothing: what a person resolved while it held was forgotten
        # (stored before forgetting, it is watched anew all the same). What it forgot and has
        # not come back yet still names it when it does.
        if not incident.is_open and incident.forgotten:
            actor = next(
                (
                    entry.actor
                    for entry in reversed(incident.timeline)
                    if entry.kind == IncidentEventKind.RESOLVED and entry.actor is not None
                ),
                "a person",
            )
            for key in incident.forgotten:
                entry = incident.scope.get(key)
                if entry is not None:
                    words = _follows_words(incident.number, actor, entry.condition())
                    self._follows[key] = (incident.number, words)
        if incident.is_open:
            for key, entry in incident.scope.items():
                if entry.cleared_at is None:
                    self._holding[key] = _Held(
                        entry.condition(), _State.IN_INCIDENT, number=incident.number
                    )


def _note_raise(raises: _Raises, number: int, condition: Condition, at: datetime) -> None:
    best = raises.get(number)
    if best is None or condition.priority < best[0]:
        raises[number] = (condition.priority, condition, at)


def _describe(condition: Condition) -> str:
    where = condition.location + (f"/{condition.user}" if condition.user else "")
    return (
        f"{condition.service} {where} {condition.kind.label} "
        f"(P{int(condition.priority)}): {condition.reason}"
    )


def _follows_words(number: int, actor: str, condition: Condition) -> str:
    return f"follows incident {number}, resolved by {actor} while {_name(condition)} still held"


def _name(condition: Condition) -> str:
    where = condition.location + (f"/{condition.user}" if condition.user else "")
    seen = f" seen by {condition.source}" if condition.source not in ("", "central") else ""
    return f"{condition.service} {where} {condition.kind.label}{seen}"


def _summary(conditions: list[Condition]) -> str:
    ordered = sorted(conditions, key=lambda c: (c.priority, c.key))
    shown = "; ".join(_describe(c) for c in ordered[:_SHOWN_CONDITIONS])
    more = len(ordered) - _SHOWN_CONDITIONS
    return shown + (f"; and {more} more" if more > 0 else "")


def headline(condition: Condition) -> str:
    """A short title in the SLA's words; the reason with its evidence is on the timeline."""
    service = service_name(condition.service.value)
    where, user = condition.location, condition.user
    kind = condition.kind
    if kind is ConditionKind.LOCATION_UNAVAILABLE:
        return f"{service} unavailable at {where} (all users)"
    if kind is ConditionKind.USER_UNAVAILABLE:
        return f"{service} unavailable for {user} at {where}"
    if kind is ConditionKind.LOCATION_DEGRADED:
        return f"{service}: calls at {where} often unrecognised (reduced performance)"
    if kind is ConditionKind.CHECK_FAILED:
        return f"check {user} failing"
    how = "often" if kind is ConditionKind.FREQUENT_MISSES else "sometimes"
    return f"{service}: calls of {user} at {where} {how} unrecognised"
