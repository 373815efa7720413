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
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from alerting.outbox import outbox_fields
from classifier.observation import ProbeResult
from ctiwatch.clock import Clock
from ctiwatch.storage import (
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

SYSTEM_ACTOR = "ctiwatch"


def incident_record(incident: Incident, now: datetime) -> IncidentRecord:
    """The stored form of ``incident``. Acknowledged counts as open for storage; the detailed
    status is in ``state``."""
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
        state=incident.to_dict(),
    )


def engine_windows(records: Iterable[MaintenanceRecord]) -> list[MaintenanceWindow]:
    """The stored windows that suppress, as the incident engine reads them: cancelled windows
    stay stored as history but suppress nothing."""
    return [record.window for record in records if not record.cancelled]


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
        # How many of each incident's timeline entries are stored already.
        self._stored_timeline: dict[int, int] = {
            incident.number: len(incident.timeline) for incident in monitor.engine.incidents()
        }

    # --- steps ---------------------------------------------------------------------------------

    async def on_results(self, batch: list[ProbeResult]) -> None:
        """The sink of the probes and of MQTT ingestion: store, classify, act, persist."""
        if not batch:
            return
        await self.store.results.add_many(batch)
        if self._observed is not None:
            self._observed(batch)
        async with self.lock:
            outcome = self.monitor.observe(batch, self.clock.now())
            await self.persist(outcome)

    async def tick(self) -> Outcome:
        async with self.lock:
            outcome = self.monitor.tick(self.clock.now())
            await self.persist(outcome)
        return outcome

    async def act(self, action: Callable[[datetime], Outcome]) -> Outcome:
        """Run a person's action on the monitor (``action(now)``) and persist what it did."""
        async with self.lock:
            outcome = action(self.clock.now())
            await self.persist(outcome)
        return outcome

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
                await self.tick()
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

    async def persist(self, outcome: Outcome) -> None:
        """Store what one step did in one transaction; call with :attr:`lock` held."""
        incidents = self._touched(outcome)
        if not incidents and not outcome.messages:
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
                await tx.incidents.save(incident_record(incident, now))
            await tx.timeline.add_many(timeline)
            for message in outcome.messages:
                await tx.outbox.enqueue(_outbox_message(outbox_fields(message)))
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
