"""Between the pure monitor and the database: one writer, one transaction per step.

:class:`Pipeline` is the only way ``ctiwatch run`` changes the monitor. Every step (probe results,
a due timer, a person's action) runs under one lock, and what it produced is persisted before
the next step starts: the changed incidents (``IncidentRecord.state`` holds
``Incident.to_dict()``), their new timeline entries and every outgoing message as an outbox row
commit together in one ``store.transaction()``, so a state change and its messages are never
stored apart. The outbox sender and the timers task are woken afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerting.escalation import EscalationState, state_from_dict, state_to_dict
from alerting.outbox import outbox_fields
from classifier.observation import ProbeResult
from ctiwatch.clock import Clock
from ctiwatch.errors import Refused
from ctiwatch.storage import (
    AuditEntry,
    IncidentRecord,
    MaintenanceRecord,
    OutboxMessage,
    ScopeItem,
    Store,
    TimelineEntry,
)
from incidents.maintenance import MaintenanceWindow
from incidents.model import Incident, IncidentError
from pipeline.monitor import Monitor, Outcome

log = logging.getLogger("ctiwatch.persist")

RESTORED_RESOLVED = 200  # recently resolved incidents kept in memory, so people can reopen them
ESCALATION_KEY = "escalation"  # beside Incident.to_dict() in IncidentRecord.state

SYSTEM_ACTOR = "ctiwatch"


def incident_record(
    incident: Incident, now: datetime, escalation: EscalationState | None = None
) -> IncidentRecord:
    """The stored form of ``incident``. Acknowledged counts as open for storage; the detailed
    status is in ``state``, with the escalation state beside the incident's own."""
    state = incident.to_dict()
    if escalation is not None:
        state[ESCALATION_KEY] = state_to_dict(escalation)
    entries = incident.active_scope() or list(incident.scope.values())
    return IncidentRecord(
        number=incident.number,
        customer=incident.customer,
        automatic=incident.automatic,
        priority=incident.priority,
        status="open" if incident.is_open else "resolved",
        title=incident.title,
        opened_at=incident.opened_at,
        updated_at=now,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        resolved_by=None if incident.resolved_by is None else incident.resolved_by.value,
        response_due=incident.response_due,
        update_due=incident.update_due,
        repair_due=incident.repair_due,
        breaches=tuple(name.value for name in incident.breaches),
        scope=tuple(
            ScopeItem(
                service=entry.service,
                location=entry.location,
                user=entry.user,
                priority=entry.priority,
            )
            for entry in entries
        ),
        state=state,
    )


@dataclass(slots=True)
class StoredState:
    """The incident side as the database holds it: what a monitor starts (or restores) from."""

    incidents: list[Incident]
    escalations: dict[int, EscalationState]
    next_number: int
    windows: list[MaintenanceRecord]


async def load_state(store: Store, now: datetime) -> StoredState:
    """The open incidents and the recently resolved ones (so people can reopen them), their
    escalations, the next incident number and the maintenance windows not over yet."""
    records = await store.incidents.list(status="open", limit=1_000_000)
    records += await store.incidents.list(status="resolved", limit=RESTORED_RESOLVED)
    newest = await store.incidents.list(limit=1)
    incidents: list[Incident] = []
    escalations: dict[int, EscalationState] = {}
    for record in records:
        state = dict(record.state)
        try:
            incidents.append(Incident.from_dict(state))
        except (KeyError, TypeError, ValueError) as exc:
            log.error(
                "incident state cannot be restored", extra={"incident": record.number, "error": exc}
            )
            continue
        stored = state.get(ESCALATION_KEY)
        if isinstance(stored, dict):
            try:
                escalations[record.number] = state_from_dict(record.number, stored)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "escalation state cannot be restored; the chain starts again",
                    extra={"incident": record.number, "error": exc},
                )
    windows = await store.maintenance.list(ending_after=now)
    return StoredState(
        incidents=incidents,
        escalations=escalations,
        next_number=(newest[0].number + 1) if newest else 1,
        windows=windows,
    )


def engine_windows(records: Iterable[MaintenanceRecord]) -> list[MaintenanceWindow]:
    """The stored windows that suppress, as the incident engine reads them: cancelled windows
    stay stored as history but suppress nothing."""
    return [record.window for record in records if not record.cancelled]


class StepFailed(RuntimeError):
    """A step could not be completed and stored; the monitor is as the database holds it."""


class Pipeline:
    """The monitor, its lock, and the persistence of what it does."""

    def __init__(
        self,
        monitor: Monitor,
        store: Store,
        clock: Clock,
        *,
        on_results: Callable[[list[ProbeResult]], None] | None = None,
    ) -> None:
        self.monitor = monitor
        self.store = store
        self.clock = clock
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()  # wakes the timers task: next_due may have moved
        self.outbox_ready = asyncio.Event()  # wakes the outbox sender
        self._observed = on_results
        self._dirty = False  # a step failed: memory may be ahead of the database
        # How many of each incident's timeline entries are stored already.
        self._stored_timeline: dict[int, int] = {
            incident.number: len(incident.timeline) for incident in monitor.engine.incidents()
        }

    # --- steps ---------------------------------------------------------------------------------

    async def on_results(self, batch: list[ProbeResult]) -> None:
        """The sink of the probes and of MQTT ingestion: store, classify, act, persist.

        The results are stored first (an error there is the caller's: it keeps the batch).
        Once stored they are never lost: if the monitor's step cannot commit, the classifier
        keeps what they showed and the next step that can commit applies it.
        """
        if not batch:
            return
        await self.store.results.add_many(batch)
        if self._observed is not None:
            self._observed(batch)
        with contextlib.suppress(StepFailed):  # logged; recovered by the next step
            await self._step(lambda now: self.monitor.observe(batch, now))

    async def tick(self) -> Outcome:
        return await self._step(self.monitor.tick)

    async def act(
        self,
        action: Callable[[datetime], Outcome],
        audit: Callable[[Outcome], AuditEntry | None] | None = None,
    ) -> Outcome:
        """Run a person's action on the monitor (``action(now)``) and persist what it did,
        with the audit line ``audit(outcome)`` gives in the same transaction.

        Raises what the action raises (``IncidentError``: refused, nothing changed) or
        :class:`StepFailed` when it could not be stored (nothing changed either)."""
        return await self._step(action, audit)

    # --- atomic steps ----------------------------------------------------------------------------

    async def _step(
        self,
        run: Callable[[datetime], Outcome],
        audit: Callable[[Outcome], AuditEntry | None] | None = None,
    ) -> Outcome:
        """One step, all or nothing: the monitor's change and its incident, timeline and outbox
        rows commit together, or the monitor is put back to what the database holds."""
        async with self.lock:
            try:
                await self._recover()
            except Exception as exc:
                log.warning("the database is not reachable yet", extra={"error": str(exc)})
                raise StepFailed(f"the database is not reachable: {exc}") from exc
            try:
                outcome = run(self.clock.now())
            except (IncidentError, Refused):
                raise  # refused before anything changed (the engine's and the console's rule)
            except Exception as exc:
                await self._failed("the monitor failed on a step", exc)
                raise StepFailed(str(exc)) from exc
            try:
                await self.persist(outcome, None if audit is None else audit(outcome))
            except Exception as exc:
                await self._failed("a step could not be stored", exc)
                raise StepFailed(f"could not be stored: {exc}") from exc
            return outcome

    async def _failed(self, what: str, exc: Exception) -> None:
        log.error("%s; the monitor goes back to what the database holds", what, exc_info=exc)
        self._dirty = True
        try:
            await self._recover()
        except Exception as again:  # the database is still away: the next step tries again
            log.warning("the database is not reachable yet", extra={"error": str(again)})

    async def _recover(self) -> None:
        """After a failed step: the incident side as the database holds it, then what the
        classifier saw since (its results are stored) applied and stored again."""
        if not self._dirty:
            return
        now = self.clock.now()
        stored = await load_state(self.store, now)
        saved = [incident.to_dict() for incident in stored.incidents]

        def restore() -> None:
            incidents = [Incident.from_dict(state) for state in saved]
            self.monitor.restore(incidents, stored.next_number, stored.escalations, now)
            self._stored_timeline = {i.number: len(i.timeline) for i in incidents}

        restore()
        try:
            await self.persist(self.monitor.resync(now))
        except Exception:
            restore()  # still refused: memory stays what the database holds
            raise
        self._dirty = False
        log.info("the monitor is back in step with the database")

    async def set_maintenance(self, windows: Iterable[MaintenanceRecord]) -> None:
        async with self.lock:
            self.monitor.set_maintenance(engine_windows(windows))
        self.changed.set()

    async def timers(self, max_wait: float = 60.0) -> None:
        """Sleep until the monitor's next due instant (or a change), then tick; forever."""
        while True:
            due = self.monitor.next_due()
            now = self.clock.now()
            if due is not None and due <= now:
                try:
                    await self.tick()
                except StepFailed:  # logged; the next tick restores and tries again
                    await self.clock.sleep(1.0)
                    continue
                if self.monitor.next_due() == due:
                    # Nothing more can happen at this instant; let time move on.
                    await self.clock.sleep(0.05)
                continue
            self.changed.clear()
            wait = max_wait if due is None else min(max_wait, (due - now).total_seconds())
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    await self.changed.wait()
            except TimeoutError:
                pass

    # --- persistence ---------------------------------------------------------------------------

    async def persist(self, outcome: Outcome, audit: AuditEntry | None = None) -> None:
        """Store what one step did in one transaction (with ``audit``, the audit line of the
        person's action it was); call with :attr:`lock` held."""
        incidents = self._touched(outcome)
        if not incidents and not outcome.messages and audit is None:
            return
        now = self.clock.now()
        timeline: list[TimelineEntry] = []
        counts: dict[int, int] = {}
        for incident in incidents:
            stored = self._stored_timeline.get(incident.number, 0)
            timeline += [
                TimelineEntry(
                    incident_number=incident.number,
                    at=entry.at,
                    kind=entry.kind,
                    detail=entry.detail,
                    actor=entry.actor or SYSTEM_ACTOR,
                )
                for entry in incident.timeline[stored:]
            ]
            counts[incident.number] = len(incident.timeline)
        async with self.store.transaction() as tx:
            for incident in incidents:
                escalation = self.monitor.escalation_of(incident.number)
                await tx.incidents.save(incident_record(incident, now, escalation))
            await tx.timeline.add_many(timeline)
            for message in outcome.messages:
                await tx.outbox.enqueue(_outbox_message(outbox_fields(message)))
            if audit is not None:
                await tx.audit.add(audit)
        self._stored_timeline.update(counts)
        for event in outcome.events:
            log.info(
                "incident %s",
                event.kind.value,
                extra={
                    "incident": event.incident,
                    "customer": event.customer,
                    "priority": int(event.priority),
                },
            )
        self.changed.set()
        if outcome.messages:
            self.outbox_ready.set()

    def _touched(self, outcome: Outcome) -> list[Incident]:
        """The changed incidents, and those whose timeline grew without a change (the monitor
        notes escalation pages on the timeline), in number order."""
        found: dict[int, Incident] = {i.number: i for i in outcome.changed}
        numbers = {e.incident for e in outcome.events} | {m.incident for m in outcome.messages}
        for number in numbers:
            if number is None or number in found:
                continue
            try:
                found[number] = self.monitor.engine.incident(number)
            except IncidentError:
                continue
        return [found[number] for number in sorted(found)]


def _outbox_message(fields: dict[str, Any]) -> OutboxMessage:
    return OutboxMessage(**fields)
