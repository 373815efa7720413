"""The middle of ctiwatch, composed: classifier → incidents → SLA timers → escalation → routing.

Synchronous and free of I/O: results, people's actions and ``now`` go in; the incident events,
the messages to send and the incidents that changed come out. ``ctiwatch run`` persists the
outcome (incident, timeline and outbox rows in one transaction) and ``ctiwatch simulate``
records it; both drive the same object, so the simulation proves what the service does.

Besides routing each incident event, the monitor owns two rules that span incidents:

* contingency: the monitor counts the customers with an open P1 and collects the repair
  breaches of each step; :func:`alerting.contingency.contingency_triggers` decides the calls;
* escalation: every automatic incident gets a snapshot of the escalation chain when it opens;
  unacknowledged, the next step is paged when due; acknowledging stops it, a raise restarts it;
* paging (:mod:`alerting.paging`): at the end of every step, the SMS that wait for support
  hours are held (and stored by the shell with the step), the held ones due go out (one
  digest per person at the opening), and each person's messages of the step are combined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from alerting import escalation, paging
from alerting.contingency import RepairBreach, contingency_triggers
from alerting.internal import AgentEvent, agent_alerts
from alerting.model import (
    CustomerView,
    IncidentView,
    OutgoingMessage,
    RoutingContext,
    ScopeEntry,
    Trigger,
    TriggerKind,
)
from alerting.rotation import Rotation, on_call
from alerting.routing import route
from classifier.conditions import ConditionKind
from classifier.observation import ProbeResult
from classifier.rules import Classifier
from incidents.engine import IncidentEngine
from incidents.model import (
    Incident,
    IncidentError,
    IncidentEvent,
    IncidentEventKind,
    MaintenanceWindow,
)
from pipeline.settings import MonitorSettings
from sla.priority import Priority
from sla.targets import SlaPolicy

_TIMER_TRIGGERS = {
    IncidentEventKind.RESPONSE_WARNING: TriggerKind.RESPONSE_WARNING,
    IncidentEventKind.RESPONSE_BREACH: TriggerKind.RESPONSE_BREACH,
    IncidentEventKind.UPDATE_WARNING: TriggerKind.UPDATE_WARNING,
    IncidentEventKind.UPDATE_BREACH: TriggerKind.UPDATE_BREACH,
    IncidentEventKind.REPAIR_WARNING: TriggerKind.REPAIR_WARNING,
    IncidentEventKind.REPAIR_BREACH: TriggerKind.REPAIR_BREACH,
}
_CONDITION_WORDS = {
    ConditionKind.LOCATION_UNAVAILABLE: "down",
    ConditionKind.USER_UNAVAILABLE: "down",
    ConditionKind.LOCATION_DEGRADED: "degraded",
    ConditionKind.FREQUENT_MISSES: "calls unrecognised",
    ConditionKind.SOME_MISSES: "calls unrecognised",
    ConditionKind.CHECK_FAILED: "failing",
}


@dataclass(slots=True)
class Outcome:
    """What one step of the monitor produced."""

    events: list[IncidentEvent] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    changed: list[Incident] = field(default_factory=list)
    # Paging: SMS held in this step for the next opening of support hours (the shell stores
    # them with the step), and the idempotency keys of held ones this step sent out.
    held: list[OutgoingMessage] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.events.extend(other.events)
        self.messages.extend(other.messages)
        self.changed.extend(other.changed)
        self.held.extend(other.held)
        self.released.extend(other.released)


class Monitor:
    """One per process. Not thread-safe; the shell calls it from one task at a time."""

    def __init__(
        self,
        settings: MonitorSettings,
        policy: SlaPolicy,
        *,
        incidents: Iterable[Incident] = (),
        next_number: int | None = None,
        maintenance: Iterable[MaintenanceWindow] = (),
        escalations: Mapping[int, escalation.EscalationState] | None = None,
        keep_resolved: int | None = None,
        held: Iterable[OutgoingMessage] = (),
    ) -> None:
        self.settings = settings
        self.policy = policy
        # ``ctiwatch run`` holds the incidents resolved last, not its whole history (see
        # ``IncidentEngine``); ``simulate`` keeps every incident for its output.
        self._keep_resolved = keep_resolved
        self.customers = {c.id: c.view for c in settings.customers}
        topology = {c.id: c.locations for c in settings.customers}
        checks = {c.id: c.checks for c in settings.customers}
        self.classifier = Classifier(settings.thresholds, topology, checks=checks)
        self.engine = IncidentEngine(policy, incidents, next_number, keep_resolved)
        self.routing = settings.routing
        self.rotation: Rotation = settings.rotation
        self._configured_steps = [(s.name, s.after, s.numbers) for s in settings.escalation]
        self._escalations: dict[int, escalation.EscalationState] = dict(escalations or {})
        self._maintenance: tuple[MaintenanceWindow, ...] = tuple(maintenance)
        self._p1_customers = self._count_p1_customers()
        # Paging: SMS waiting for the next opening (oldest first), and those held by the step
        # under way (collected by :meth:`_finish`).
        self._held: list[OutgoingMessage] = list(held)
        self._step_held: list[OutgoingMessage] = []

    # --- inputs --------------------------------------------------------------------------------

    def set_maintenance(self, windows: Iterable[MaintenanceWindow]) -> None:
        self._maintenance = tuple(windows)

    def resume(self, now: datetime) -> None:
        """After a restart with restored incidents: hold their conditions again (so that their
        clearing is still reported). Each open automatic incident's escalation continues where
        its stored state was (the step reached, its generation, when the next is due); one
        stored without it (before escalation was stored) starts its chain at ``now``."""
        self.classifier.resume(self.engine.conditions_held(), now)
        self._keep_escalations(now)

    def _keep_escalations(self, now: datetime) -> None:
        open_numbers = set()
        for incident in self.engine.open_incidents():
            open_numbers.add(incident.number)
            if (
                incident.automatic
                and incident.acknowledged_at is None
                and incident.number not in self._escalations
            ):
                self._start_escalation(incident, now)
        for number in [n for n in self._escalations if n not in open_numbers]:
            del self._escalations[number]
        self._p1_customers = self._count_p1_customers()

    def escalation_of(self, number: int) -> escalation.EscalationState | None:
        """The escalation state of incident ``number`` (stored with it)."""
        return self._escalations.get(number)

    def restore(
        self,
        incidents: Iterable[Incident],
        next_number: int | None,
        escalations: Mapping[int, escalation.EscalationState],
        now: datetime,
        held: Iterable[OutgoingMessage] = (),
    ) -> None:
        """Make the incident side what the database holds after a step failed to commit.

        The incidents and their escalations are replaced by the stored ones; the classifier
        (built from results, which are stored before a step runs) stays, and what it holds
        that the restored incidents do not know is reported again by the next :meth:`resync`.
        """
        self.engine = IncidentEngine(self.policy, incidents, next_number, self._keep_resolved)
        self._escalations = dict(escalations)
        self._held = list(held)
        self._step_held = []
        self._keep_escalations(now)
        self.classifier.resync(self.engine.conditions_held())

    def take_over(
        self,
        incidents: Iterable[Incident],
        next_number: int | None,
        escalations: Mapping[int, escalation.EscalationState],
        now: datetime,
        held: Iterable[OutgoingMessage] = (),
        maintenance: Iterable[MaintenanceWindow] | None = None,
    ) -> None:
        """Start again from stored state, as after a restart: a worker that becomes the active
        monitor (or one that shows what the active monitor stored). The classifier starts
        empty and holds the restored incidents' conditions again (:meth:`resume`)."""
        topology = {c.id: c.locations for c in self.settings.customers}
        checks = {c.id: c.checks for c in self.settings.customers}
        self.classifier = Classifier(self.settings.thresholds, topology, checks=checks)
        self.engine = IncidentEngine(self.policy, incidents, next_number)
        self._escalations = dict(escalations)
        self._held = list(held)
        self._step_held = []
        if maintenance is not None:
            self._maintenance = tuple(maintenance)
        self._p1_customers = self._count_p1_customers()
        self.resume(now)

    def resync(self, now: datetime) -> Outcome:
        """Apply what the classifier reported again after :meth:`restore`."""
        outcome = self._conditions_changed(now)
        self._collect_changed(outcome)
        return self._finish(outcome, now)

    def observe(self, results: Iterable[ProbeResult], now: datetime) -> Outcome:
        """Feed results (probe rounds, agent batches, call events) and act on what changed."""
        observe = self.classifier.observe
        changed = False
        for result in results:
            changed = observe(result) or changed
        if not changed:
            return Outcome()
        return self._finish(self._conditions_changed(now), now)

    def tick(self, now: datetime) -> Outcome:
        """Run what is due at ``now``: recoveries, SLA timers, window ends, escalation steps."""
        outcome = Outcome()
        if self.classifier.advance(now):
            outcome.extend(self._conditions_changed(now))
        outcome.extend(self._handle(self.engine.tick(now), now))
        outcome.extend(self._escalate(now))
        self._collect_changed(outcome)
        return self._finish(outcome, now)

    def next_due(self) -> datetime | None:
        """When :meth:`tick` has work next (None: nothing scheduled)."""
        instants = [self.classifier.next_change_at(), self.engine.next_due()]
        for state in self._escalations.values():
            task = escalation.next_task(state)
            if task is not None:
                instants.append(task.due)
        if self._held:
            # The opening after the oldest held message: the digest goes out then.
            oldest = min(message.at for message in self._held)
            instants.append(self.policy.calendar.next_opening(oldest))
        return min((at for at in instants if at is not None), default=None)

    # --- people --------------------------------------------------------------------------------

    def acknowledge(self, number: int, now: datetime, actor: str) -> Outcome:
        return self._finish(self._handle(self.engine.acknowledge(number, now, actor), now), now)

    def update(self, number: int, now: datetime, actor: str, text: str) -> Outcome:
        return self._finish(self._handle(self.engine.update(number, now, actor, text), now), now)

    def change_priority(
        self, number: int, priority: Priority, now: datetime, actor: str, reason: str
    ) -> Outcome:
        before = self.engine.incident(number).priority
        events = self.engine.change_priority(number, priority, now, actor, reason)
        outcome = self._handle(events, now)
        if events and priority < before:
            outcome.extend(self._raised(self.engine.incident(number), before, now))
        return self._finish(outcome, now)

    def resolve(
        self, number: int, now: datetime, actor: str, reason: str = "", force: bool = False
    ) -> Outcome:
        """A person resolves incident ``number``. While conditions in its scope still hold
        this raises ``ConditionsStillHold`` unless ``force``; forced, the classifier forgets
        them (their series start again from nothing), so a problem that persists opens a new
        incident naming this one."""
        events = self.engine.resolve(number, now, actor, reason, force)
        self.classifier.forget(self.engine.take_forgotten())
        return self._finish(self._handle(events, now), now)

    def reopen(self, number: int, now: datetime, actor: str, text: str = "") -> Outcome:
        return self._finish(self._handle(self.engine.reopen(number, now, actor, text), now), now)

    def open_question(self, customer: str, now: datetime, actor: str, text: str) -> Outcome:
        if customer not in self.customers:
            raise IncidentError(f"unknown customer {customer!r}")
        return self._finish(
            self._handle(self.engine.open_question(customer, now, actor, text), now), now
        )

    def agent_changed(
        self, event: AgentEvent, before: str | None, now: datetime, *, muted: bool = False
    ) -> Outcome:
        """A probe agent's health changed (ctiwatch's own problem: no incident). On-call is
        texted (:func:`alerting.internal.agent_alerts`) unless the agent is ``muted``
        (retired, or silenced at ``now``), inside support hours only unless the policy says
        any hour (held for the digest otherwise), combined with what else they get now."""
        if muted:
            return self._finish(Outcome(), now)
        messages = agent_alerts(event, before, on_call(self.rotation, now), self.routing.timezone)
        send, held = paging.split_held(
            messages, None, self.policy.calendar.is_support_time(now), self.routing
        )
        self._step_held += held
        return self._finish(Outcome(messages=send), now)

    @property
    def held(self) -> list[OutgoingMessage]:
        """The SMS waiting for the next opening of support hours, oldest first."""
        return list(self._held)

    # --- the rules -----------------------------------------------------------------------------

    def _conditions_changed(self, now: datetime) -> Outcome:
        changes = self.classifier.take_changes()
        if not changes:
            return Outcome()
        events = self.engine.apply_changes(changes, now, self._maintenance)
        return self._handle(events, now)

    def _handle(self, events: list[IncidentEvent], now: datetime) -> Outcome:
        outcome = Outcome(events=list(events))
        for event in events:
            if event.incident is None:
                continue
            incident = self.engine.incident(event.incident)
            kind = event.kind
            if kind is IncidentEventKind.OPENED:
                outcome.messages += self._route(Trigger(TriggerKind.OPENED, now), incident, now)
                if incident.automatic:
                    self._start_escalation(incident, now)
            elif kind is IncidentEventKind.RAISED:
                outcome.extend(self._raised(incident, None, now))
            elif kind is IncidentEventKind.ACKNOWLEDGED:
                self._stop_escalation(incident.number)
            elif kind is IncidentEventKind.RESOLVED:
                self._escalations.pop(incident.number, None)
                outcome.messages += self._route(Trigger(TriggerKind.RESOLVED, now), incident, now)
            elif kind is IncidentEventKind.REOPENED:
                if incident.automatic:
                    self._start_escalation(incident, now)
            elif kind in _TIMER_TRIGGERS:
                trigger = Trigger(_TIMER_TRIGGERS[kind], event.at)
                outcome.messages += self._route(trigger, incident, now)
        outcome.messages += self._contingency(events, now)
        outcome.changed = self.engine.take_changed()
        return outcome

    def _raised(self, incident: Incident, previous: Priority | None, now: datetime) -> Outcome:
        generation = len([e for e in incident.timeline if e.kind == "raised"])
        trigger = Trigger(
            TriggerKind.RAISED,
            now,
            generation=generation,
            previous_priority=None if previous is None else int(previous),
        )
        state = self._escalations.get(incident.number)
        if state is not None:
            self._escalations[incident.number] = escalation.restart(
                state, int(incident.priority), now
            )
        return Outcome(messages=self._route(trigger, incident, now))

    def _contingency(self, events: list[IncidentEvent], now: datetime) -> list[OutgoingMessage]:
        before, after = self._p1_customers, self._count_p1_customers()
        self._p1_customers = after
        calls = contingency_triggers(
            self.routing,
            now,
            in_support_hours=self.policy.calendar.is_support_time(now),
            p1_customers_before=before,
            p1_customers=after,
            p1_incidents=[e.incident for e in events if e.incident is not None and e.priority == 1],
            repair_breaches=[
                RepairBreach(e.incident, e.at)
                for e in events
                if e.kind is IncidentEventKind.REPAIR_BREACH and e.incident is not None
            ],
        )
        messages: list[OutgoingMessage] = []
        for call in calls:
            messages += self._route(call.trigger, self.engine.incident(call.incident), now)
        return messages

    def _count_p1_customers(self) -> int:
        return len(
            {
                i.customer
                for i in self.engine.open_incidents()
                if i.automatic and i.priority == Priority.CRITICAL
            }
        )

    # --- escalation ----------------------------------------------------------------------------

    def _start_escalation(self, incident: Incident, now: datetime) -> None:
        chain = escalation.build_chain(
            on_call(self.rotation, now), self._configured_steps, self.routing
        )
        previous = self._escalations.get(incident.number)
        generation = 1 if previous is None else previous.generation + 1
        self._escalations[incident.number] = escalation.start(
            incident.number, int(incident.priority), chain, now, generation
        )

    def _stop_escalation(self, number: int) -> None:
        state = self._escalations.get(number)
        if state is not None:
            self._escalations[number] = escalation.acknowledge(state)

    def delivery_failed(self, number: int, now: datetime, detail: str) -> Outcome:
        """A page of incident ``number`` was not delivered or not answered (Twilio's status
        callback: failed, undelivered, busy, no-answer): note it on the timeline and, unless
        someone has acknowledged, page the next escalation step now instead of waiting."""
        self.engine.note(number, now, "alert_failed", detail)
        outcome = self.escalate_now(number, now, f"page not answered: {detail}")
        self._collect_changed(outcome)
        return self._finish(outcome, now)

    def escalate_now(self, number: int, now: datetime, reason: str) -> Outcome:
        """Page the next escalation step at once (a page was not answered or not delivered).

        Does nothing for an acknowledged or resolved incident, or when the chain is done.
        """
        state = self._escalations.get(number)
        if state is None or escalation.next_task(state) is None:
            return Outcome()
        incident = self.engine.incident(number)
        if not incident.is_open:
            return Outcome()
        self._escalations[number] = replace(state, next_due=now)
        self.engine.note(number, now, "escalation_hastened", reason)
        outcome = self._escalate(now)
        self._collect_changed(outcome)
        return self._finish(outcome, now)

    def _collect_changed(self, outcome: Outcome) -> None:
        """Add the incidents changed since the last collection (once each, in order)."""
        seen = {incident.number for incident in outcome.changed}
        outcome.changed += [i for i in self.engine.take_changed() if i.number not in seen]

    def _escalate(self, now: datetime) -> Outcome:
        outcome = Outcome()
        for number in sorted(self._escalations):
            state = self._escalations[number]
            task = escalation.next_task(state)
            if task is None or task.due > now:
                continue
            state, step = escalation.advance(state, task, now)
            self._escalations[number] = state
            if step is None:
                continue
            incident = self.engine.incident(number)
            if not incident.is_open:
                continue
            trigger = escalation.escalated_trigger(state, step, now)
            outcome.messages += self._route(trigger, incident, now)
            self.engine.note(number, now, "escalated", f"paged the {step.name}")
        return outcome

    # --- routing and paging ----------------------------------------------------------------

    def _route(self, trigger: Trigger, incident: Incident, now: datetime) -> list[OutgoingMessage]:
        """The messages ``trigger`` calls for now; those that wait for support hours are
        held (:func:`alerting.paging.holds`) and collected by :meth:`_finish`."""
        in_support_hours = self.policy.calendar.is_support_time(now)
        context = RoutingContext(
            in_support_hours=in_support_hours,
            open_p1_customers=self._p1_customers,
            oncall=on_call(self.rotation, now),
        )
        messages = route(trigger, self.view(incident), self.routing, context)
        send, held = paging.split_held(
            messages, int(incident.priority), in_support_hours, self.routing
        )
        self._step_held += held
        return send

    def _priorities(self, numbers: Iterable[int | None]) -> dict[int, int]:
        """The priority now of each of the known incidents ``numbers``."""
        found = {}
        for number in numbers:
            if number is None:
                continue
            try:
                found[number] = int(self.engine.incident(number).priority)
            except IncidentError:
                continue
        return found

    def _finish(self, outcome: Outcome, now: datetime) -> Outcome:
        """The end of a step: what it held joins the waiting messages (and the outcome, to be
        stored), the held messages due go out, and each person's messages are combined."""
        if self._step_held:
            outcome.held += self._step_held
            self._held += self._step_held
            self._step_held = []
        released: list[OutgoingMessage] = []
        if self._held:
            priorities = self._priorities({m.incident for m in self._held})
            released, self._held = paging.release(
                self._held,
                now,
                self.policy.calendar.is_support_time(now),
                priorities,
                self.routing,
            )
            outcome.released += [m.idempotency_key for m in released]
        if released or len(outcome.messages) > 1:
            outcome.messages = paging.combine([*outcome.messages, *released], self.routing)
        return outcome

    def view(self, incident: Incident) -> IncidentView:
        customer = self.customers.get(incident.customer) or CustomerView(id=incident.customer)
        scope = tuple(
            ScopeEntry(
                service=entry.service.value,
                location=entry.location,
                user=entry.user,
                priority=int(entry.priority),
                condition=_CONDITION_WORDS.get(entry.kind, entry.kind.label),
            )
            for entry in incident.active_scope() or list(incident.scope.values())
        )
        top = min(incident.scope.values(), key=lambda e: e.priority, default=None)
        evidence = tuple(line for entry in incident.scope.values() for line in entry.evidence)
        description = incident.timeline[0].detail if incident.timeline else incident.title
        return IncidentView(
            number=incident.number,
            customer=customer,
            priority=int(incident.priority),
            automatic=incident.automatic,
            opened_at=incident.opened_at,
            title=incident.title,
            description=description,
            priority_reason=top.reason if top is not None else "",
            scope=scope,
            evidence=evidence[-20:],
            response_due=incident.response_due,
            update_due=incident.update_due,
            repair_due=incident.repair_due,
            resolved_by="" if incident.resolved_by is None else incident.resolved_by.value,
        )
