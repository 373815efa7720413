"""Between the pure monitor and the database: one writer, one transaction per step.

:class:`Pipeline` is the only way ``ctiwatch run`` changes the monitor. Every step (probe results,
a due timer, a person's action) runs under one lock, and what it produced is persisted before
the next step starts: the changed incidents (``IncidentRecord.state`` holds
``Incident.to_dict()``), their new timeline entries, every outgoing message as an outbox row and
the SMS the step held for the next opening of support hours (and the removal of the held ones it
sent out) commit together in one ``store.transaction()``, so a state change and its messages are
never stored apart. The outbox sender and the timers task are woken afterwards.

While the database is unreachable, results (the own probes' and the agents') wait in a bounded
:class:`Backlog` in memory, oldest first; :meth:`Pipeline.catch_up` stores them in order once the
database answers again, then applies them to the monitor, and re-runs what could not commit. A
worker beside the active monitor (several workers) keeps and stores its results the same way, and
leaves applying them to the active monitor, which reads them back.

A person's action that came through another worker (:mod:`ctiwatch.handover`) is marked done in
the transaction of the step that applied it (``handover``), so it is applied once or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerting.escalation import EscalationState, state_from_dict, state_to_dict
from alerting.model import OutgoingMessage
from alerting.outbox import outbox_fields
from classifier.observation import ProbeResult
from ctiwatch.clock import Clock
from ctiwatch.errors import Refused
from ctiwatch.leadership import Leadership
from ctiwatch.readmodel import StateVersion
from ctiwatch.storage import (
    AuditEntry,
    IncidentRecord,
    MaintenanceRecord,
    OutboxMessage,
    ScopeItem,
    Store,
    TimelineEntry,
)
from ctiwatch.storage.handovers import HandoverGone
from ctiwatch.storage.leader import Fenced
from incidents.maintenance import MaintenanceWindow
from incidents.model import Incident, IncidentError
from pipeline.monitor import Monitor, Outcome

log = logging.getLogger("ctiwatch.persist")

# A step back of the wall clock longer than this is logged (shorter ones are jitter).
_STEP_BACK_NOTED = timedelta(seconds=1)
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
    held: list[OutgoingMessage] = field(default_factory=list)


async def load_state(store: Store, now: datetime) -> StoredState:
    """The open incidents and the recently resolved ones (so people can reopen them), their
    escalations, the next incident number and the maintenance windows not over yet."""
    records = await store.incidents.list(status="open", limit=1_000_000)
    records += await store.incidents.list(status="resolved", limit=RESTORED_RESOLVED)
    last_number = await store.incidents.last_number()
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
        next_number=last_number + 1,
        windows=windows,
        held=await store.held.list(),
    )


def engine_windows(records: Iterable[MaintenanceRecord]) -> list[MaintenanceWindow]:
    """The stored windows that suppress, as the incident engine reads them (each occurrence
    of a recurring one): cancelled windows stay stored as history but suppress nothing."""
    return [window for record in records if not record.cancelled for window in record.windows]


class StepFailed(RuntimeError):
    """A step could not be completed and stored; the monitor is as the database holds it."""


class NotLeader(StepFailed):
    """This worker is not the active monitor (several workers): it changes no incident."""


class Withdrawn(StepFailed):
    """The handed-over action was withdrawn by the worker that took it in (its person was told
    to try again) before this step could commit it: not applied."""


OWN_RESULTS_KEPT = 200_000  # result ids the active monitor applied itself, not read back again
MISSING_KEPT = timedelta(seconds=60)  # how long an id below the cursor may still show up
MAINTENANCE_EVERY = 5  # polls between reads of the maintenance windows (other workers' changes)
READ_BACK_BATCH = 5_000  # result rows read back at once (more waiting: read again at once)


@dataclass(slots=True)
class _ReadBack:
    """Where a worker is in reading the results the others stored."""

    cursor: int | None = None  # the highest row id read (None: not started)
    missing: dict[int, datetime] = field(default_factory=dict)  # ids skipped, since when
    full: bool = False  # the last read was a full batch: more are waiting


Transient = Callable[[BaseException], bool]
# Results the database refused for what they hold (not for being away), with the reason.
Park = Callable[[list[tuple[ProbeResult, str]]], Awaitable[None]]


def _never_transient(exc: BaseException) -> bool:
    return False


class Backlog:
    """Result batches waiting for the database, oldest first, at most ``limit`` results: beyond
    it the oldest are dropped (counted in :attr:`dropped`). The batch being stored
    (:meth:`take`) is never cut: it is stored whole, or put back first (:meth:`put_back`)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a backlog holds at least one result")
        self.limit = limit
        self._batches: deque[list[ProbeResult]] = deque()
        self._size = 0  # results in _batches
        self._taken: list[ProbeResult] | None = None
        self.dropped = 0  # since the process started
        self.kept = 0  # results ever put here

    def __len__(self) -> int:
        """Results waiting (the one batch being stored included)."""
        return self._size + (len(self._taken) if self._taken is not None else 0)

    def add(self, batch: list[ProbeResult]) -> int:
        """Keep ``batch`` after the others; how many of the oldest results were dropped."""
        batch = batch[-self.limit :]
        self._batches.append(batch)
        self._size += len(batch)
        self.kept += len(batch)
        dropped = 0
        while self._size > self.limit:
            oldest = self._batches[0]
            excess = self._size - self.limit
            if len(oldest) <= excess:
                self._batches.popleft()
                gone = len(oldest)
            else:
                self._batches[0] = oldest[excess:]
                gone = excess
            self._size -= gone
            dropped += gone
        self.dropped += dropped
        return dropped

    def take(self) -> list[ProbeResult] | None:
        """The oldest batch, to be stored: then :meth:`done` or :meth:`put_back`."""
        if self._taken is not None:
            raise RuntimeError("a batch is being stored already")
        if not self._batches:
            return None
        batch = self._taken = self._batches.popleft()
        self._size -= len(batch)
        return batch

    def done(self) -> None:
        """The batch taken is stored."""
        self._taken = None

    def put_back(self) -> None:
        """The batch taken could not be stored: it is the oldest again."""
        if self._taken is not None:
            self._batches.appendleft(self._taken)
            self._size += len(self._taken)
            self._taken = None


class Pipeline:
    """The monitor, its lock, and the persistence of what it does."""

    def __init__(
        self,
        monitor: Monitor,
        store: Store,
        clock: Clock,
        *,
        on_results: Callable[[list[ProbeResult]], None] | None = None,
        transient: Transient = _never_transient,
        backlog: int = 100_000,
        retry_interval: timedelta = timedelta(seconds=5),
        park: Park | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.monitor = monitor
        # Several workers: only the leader's steps change the monitor, each fenced.
        self.leadership = leadership
        self._own: OrderedDict[str, None] = OrderedDict()
        # What this worker read of the results the others stored, whatever its role.
        self._reader = _ReadBack()
        self._told_after = 0  # rows up to this id are in the pages' first load
        self._leader_address = ""  # the active monitor's web address, when another worker's
        self.store = store
        self.clock = clock
        self._transient = transient
        self._park = park
        self.retry_interval = retry_interval
        # Results kept while the database is away, and since when and why it is away.
        self.backlog = Backlog(backlog)
        self.unreachable_since: datetime | None = None
        self.unreachable_error = ""
        self._backlog_warned = False
        self._catch_up = asyncio.Event()  # wakes catch_up(): results wait, or a step failed
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()  # wakes the timers task: next_due may have moved
        self.outbox_ready = asyncio.Event()  # wakes the outbox sender
        self._observed = on_results
        # The latest instant a step ran at: the monitor's time never goes back (see now()).
        self._latest: datetime | None = None
        self._standing_still = False
        # What the pages read is rebuilt when this moves (see ctiwatch.readmodel); readers of
        # the results (the live rollups) are told of every stored batch.
        self.version = StateVersion()
        self.observers: list[Callable[[list[ProbeResult]], None]] = []
        self._dirty = False  # a step failed: memory may be ahead of the database
        # Batches between "store" and "observers told" (see results_held()).
        self._storing = 0
        self._results_open = asyncio.Event()
        self._results_open.set()
        self._results_idle = asyncio.Event()
        self._results_idle.set()
        # How many of each incident's timeline entries are stored already.
        self._stored_timeline: dict[int, int] = {
            incident.number: len(incident.timeline) for incident in monitor.engine.incidents()
        }

    def now(self) -> datetime:
        """The clock's time, never before an instant a step already ran at.

        The wall clock can step back (NTP, a DST mistake): the monitor's time then stands
        still until the wall clock has caught up, so no incident event is dated before an
        earlier one, no SLA or escalation timer fires twice and no elapsed time is negative.
        A step forward is taken as time that passed: what came due fires, each once.
        """
        now = self.clock.now()
        latest = self._latest
        if latest is not None and now < latest:
            if latest - now > _STEP_BACK_NOTED and not self._standing_still:
                self._standing_still = True  # one line per step back
                log.warning(
                    "the clock stepped back; the monitor's time stands still until it catches up",
                    extra={"back_s": round((latest - now).total_seconds(), 3)},
                )
            return latest
        self._latest = now
        self._standing_still = False
        return now

    # --- steps ---------------------------------------------------------------------------------

    async def on_results(self, batch: list[ProbeResult]) -> None:
        """The sink of the probes and of MQTT ingestion: store, classify, act, persist.

        The results are stored first (a refusal there is the caller's: it parks the batch).
        Once stored they are never lost: if the monitor's step cannot commit, the classifier
        keeps what they showed and the next step that can commit applies it.

        While the database is unreachable (``transient``), the batch is kept in the backlog
        instead (and every batch after it, so they are stored in the order they came) and
        :meth:`catch_up` stores and applies it once the database is back.
        """
        if not batch:
            return
        # Another worker may be the active monitor: it reads these back from the database,
        # so this one only stores them (and keeps them while the database is away, as the
        # active monitor does) and shows them on its own pages.
        leads = self.leading
        self._note_own(batch)  # told and applied here: not again when read back
        if len(self.backlog):
            self._keep(batch)
            return
        async with self._storing_results():
            try:
                await self.store.results.add_many(batch)
            except Exception as exc:
                if not self._transient(exc):
                    raise
                self._unreachable(exc)
                self._keep(batch)
                return
            self._tell(batch)
        await self._applied_or_followed(batch, leads)

    async def _applied_or_followed(self, batch: list[ProbeResult], leads: bool) -> None:
        """The active monitor applies a stored batch; a worker beside it only shows it."""
        if leads:
            await self._apply(batch)
        else:
            self._follow_results(batch)

    @property
    def leading(self) -> bool:
        """Whether this worker's steps change the monitor: one process, or the active monitor
        of several workers."""
        return self.leadership is None or self.leadership.leading

    @contextlib.asynccontextmanager
    async def results_held(self) -> AsyncIterator[None]:
        """Inside, no batch is being stored nor will be until the block ends: every batch is
        either stored before it and told to the observers already, or stored after it and
        told after it. The read model starts its queries and its observing in here."""
        self._results_open.clear()
        try:
            while self._storing:
                self._results_idle.clear()
                await self._results_idle.wait()
            yield
        finally:
            self._results_open.set()

    @contextlib.asynccontextmanager
    async def _storing_results(self) -> AsyncIterator[None]:
        """Around storing a batch and telling the observers (see :meth:`results_held`)."""
        while not self._results_open.is_set():
            await self._results_open.wait()
        self._storing += 1
        try:
            yield
        finally:
            self._storing -= 1
            if not self._storing:
                self._results_idle.set()

    def _tell(self, batch: list[ProbeResult]) -> None:
        if self._observed is not None:
            self._observed(batch)
        for observer in self.observers:
            observer(batch)

    async def _apply(self, batch: list[ProbeResult]) -> None:
        """Stored results (told to the observers already) to the monitor."""
        try:
            await self._step(lambda now: self.monitor.observe(batch, now), results=True)
        except StepFailed:  # logged; catch_up (or the next step) recovers it
            self._catch_up.set()
        self.version.bump(major=False)  # the figures moved, even when the step did not commit

    # --- the database away -----------------------------------------------------------------------

    def problems(self) -> list[str]:
        """For ``/healthz``: the database, while it is unreachable."""
        if self.unreachable_since is None:
            return []
        line = (
            f"database: unreachable since {self.unreachable_since.isoformat(timespec='seconds')}"
            f" ({self.unreachable_error}); {len(self.backlog)} results waiting"
        )
        if self.backlog.dropped:
            line += f", {self.backlog.dropped} dropped (backlog full)"
        return [line]

    def _unreachable(self, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()
        self.unreachable_error = (
            f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        )[:300]
        if self.unreachable_since is None:
            self.unreachable_since = self.clock.now()
            log.error(
                "the database is unreachable; results are kept until it is back",
                extra={"error": self.unreachable_error},
            )
        self._catch_up.set()

    def _reachable(self) -> None:
        if self.unreachable_since is not None:
            log.warning(
                "the database is reachable again",
                extra={
                    "away_s": round((self.clock.now() - self.unreachable_since).total_seconds())
                },
            )
        self.unreachable_since = None
        self.unreachable_error = ""

    def _keep(self, batch: list[ProbeResult]) -> None:
        dropped = self.backlog.add(batch)
        if dropped and not self._backlog_warned:
            self._backlog_warned = True  # once per outage; the count is on /healthz, /metrics
            log.error(
                "results backlog full; the oldest results are dropped",
                extra={"limit": self.backlog.limit, "dropped": dropped},
            )
        self._catch_up.set()

    async def catch_up(self) -> None:
        """Forever: whenever results wait or a step could not commit, store the results
        (oldest first) and apply them, and bring the monitor back in step with the database;
        while the database is away, try again every :attr:`retry_interval`."""
        while True:
            await self._catch_up.wait()
            try:
                await self._catch_up_once()
            except Exception as exc:
                if not self._transient(exc):
                    log.exception("catching up with the database failed; trying again")
                else:
                    self._unreachable(exc)
                await self.clock.sleep(self.retry_interval.total_seconds())
                continue
            if not len(self.backlog) and not self._dirty:
                self._catch_up.clear()
                self._backlog_warned = False

    async def _catch_up_once(self) -> None:
        stored = 0
        while (batch := self.backlog.take()) is not None:
            # Kept while following, stored now: only the active monitor applies them (the
            # others store them for it).
            leads = self.leading
            self._note_own(batch)
            async with self._storing_results():
                try:
                    await self._store_or_park(batch)
                except BaseException:
                    self.backlog.put_back()
                    raise
                self.backlog.done()
                self._reachable()
                stored += len(batch)
                self._tell(batch)
            await self._applied_or_followed(batch, leads)
        if self._dirty and self.leading:
            async with self.lock:
                await self._recover()
        self._reachable()
        if stored:
            log.info(
                "results kept while the database was away are stored", extra={"results": stored}
            )

    async def _store_or_park(self, batch: list[ProbeResult]) -> None:
        """Store ``batch``; results the database refuses for what they hold are found by
        halving and parked (``park``), a database away is raised (all kept for the retry)."""
        try:
            await self.store.results.add_many(batch)
            return
        except Exception as exc:
            if self._transient(exc):
                raise
            if len(batch) > 1:
                half = len(batch) // 2
                await self._store_or_park(batch[:half])
                await self._store_or_park(batch[half:])
                return
            reason = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            log.error(
                "result refused by the store; parked as a dead letter",
                extra={"result_id": batch[0].result_id[:128], "error": reason},
            )
            if self._park is not None:
                await self._park([(batch[0], reason)])

    async def tick(self) -> Outcome:
        return await self._step(self.monitor.tick)

    async def act(
        self,
        action: Callable[[datetime], Outcome],
        audit: Callable[[Outcome], AuditEntry | None] | None = None,
        *,
        handover: int | None = None,
    ) -> Outcome:
        """Run a person's action on the monitor (``action(now)``) and persist what it did,
        with the audit line ``audit(outcome)`` gives in the same transaction; with
        ``handover`` (the action came through another worker, :mod:`ctiwatch.handover`) that
        handover is marked done in it too, with the incidents the action's events were about.

        Raises what the action raises (``IncidentError``: refused, nothing changed) or
        :class:`StepFailed` when it could not be stored (nothing changed either;
        :class:`Withdrawn` when the handover was withdrawn meanwhile)."""
        return await self._step(action, audit, handover=handover)

    # --- atomic steps ----------------------------------------------------------------------------

    async def _step(
        self,
        run: Callable[[datetime], Outcome],
        audit: Callable[[Outcome], AuditEntry | None] | None = None,
        *,
        results: bool = False,
        handover: int | None = None,
    ) -> Outcome:
        """One step, all or nothing: the monitor's change and its incident, timeline and outbox
        rows commit together, or the monitor is put back to what the database holds. A
        committed step bumps :attr:`version` (major unless only results' figures moved)."""
        async with self.lock:
            leadership = self.leadership
            if leadership is not None and not leadership.leading:
                raise NotLeader(
                    "this worker is not the active monitor"
                    + (f" (it is {self._leader_address})" if self._leader_address else "")
                )
            conditions = self.monitor.classifier.version
            try:
                await self._recover()
            except Exception as exc:
                log.warning("the database is not reachable yet", extra={"error": str(exc)})
                raise StepFailed(f"the database is not reachable: {exc}") from exc
            try:
                outcome = run(self.now())
            except (IncidentError, Refused):
                raise  # refused before anything changed (the engine's and the console's rule)
            except Exception as exc:
                await self._failed("the monitor failed on a step", exc)
                raise StepFailed(str(exc)) from exc
            try:
                await self.persist(
                    outcome, None if audit is None else audit(outcome), handover=handover
                )
            except Fenced as exc:
                self._fenced(exc)
                raise NotLeader(str(exc)) from exc
            except HandoverGone as exc:
                # Its person was told to try again: memory goes back to what is stored.
                log.info("a handed-over action was withdrawn before it was applied: %s", exc)
                self._dirty = True
                try:
                    await self._recover()
                except Exception as again:
                    log.warning("the database is not reachable yet", extra={"error": str(again)})
                raise Withdrawn(str(exc)) from exc
            except Exception as exc:
                await self._failed("a step could not be stored", exc)
                raise StepFailed(f"could not be stored: {exc}") from exc
            changed = bool(outcome.events or outcome.changed or outcome.messages)
            if changed or conditions != self.monitor.classifier.version or not results:
                self.version.bump()
            return outcome

    def _fenced(self, exc: Fenced) -> None:
        """Another worker leads: what this one did is not stored, and it steps down."""
        log.error("a step was refused: this worker is no longer the active monitor: %s", exc)
        self._dirty = False
        if self.leadership is not None:
            self.leadership.fenced(str(exc))

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
        now = self.now()
        stored = await load_state(self.store, now)
        saved = [incident.to_dict() for incident in stored.incidents]

        def restore() -> None:
            incidents = [Incident.from_dict(state) for state in saved]
            self.monitor.restore(
                incidents, stored.next_number, stored.escalations, now, held=stored.held
            )
            self._stored_timeline = {i.number: len(i.timeline) for i in incidents}

        restore()
        try:
            await self.persist(self.monitor.resync(now))
        except Fenced as exc:
            self._fenced(exc)
            raise
        except Exception:
            restore()  # still refused: memory stays what the database holds
            raise
        self._dirty = False
        log.info("the monitor is back in step with the database")

    # --- several workers ------------------------------------------------------------------------

    def _note_own(self, batch: list[ProbeResult]) -> None:
        """Results this worker stores itself: not applied or told again when read back."""
        if self.leadership is None:
            return
        own = self._own
        for result in batch:
            own[result.result_id] = None
        while len(own) > OWN_RESULTS_KEPT:
            own.popitem(last=False)

    def _follow_results(self, batch: list[ProbeResult]) -> None:
        """On a worker beside the active monitor: results to its own classifier, for its
        pages only (the incidents are the active monitor's, read back by :meth:`follow`)."""
        classifier = self.monitor.classifier
        before = classifier.version
        for result in batch:
            classifier.observe(result)
        self.version.bump(major=classifier.version != before)

    def pages_loaded_through(self, row_id: int) -> None:
        """The pages' read model was loaded from the store with every result row up to
        ``row_id``: of the rows read back, only later ones are told to it (once each)."""
        self._told_after = max(self._told_after, row_id)

    async def _read_back(self) -> list[ProbeResult]:
        """The results the other workers stored since the last read, each once: rows above
        the cursor and rows below it that committed late (ids skipped by an earlier read,
        looked for again for :data:`MISSING_KEPT`). They are told to the pages here."""
        reader = self._reader
        if reader.cursor is None:
            # From now on; what is stored already is in the pages' first load (or, for the
            # monitor, in the rounds it reads again when it takes over).
            newest = await self.store.results.newest_id()
            reader.cursor = self._told_after if self._told_after else newest
        rows = await self.store.results.stored_after(reader.cursor, missing=sorted(reader.missing))
        reader.full = len(rows) >= READ_BACK_BATCH
        now = self.clock.now()
        batch: list[ProbeResult] = []
        told: list[ProbeResult] = []
        for row_id, result in rows:
            reader.missing.pop(row_id, None)
            cursor = reader.cursor
            if row_id > cursor:
                for gap in range(cursor + 1, min(row_id, cursor + 1_000)):
                    reader.missing[gap] = now
                reader.cursor = row_id
            if result.result_id in self._own:
                continue
            batch.append(result)
            if row_id > self._told_after:
                told.append(result)
        for gap, noted in list(reader.missing.items()):
            if now - noted > MISSING_KEPT:
                del reader.missing[gap]
        if told:
            async with self._storing_results():
                for observer in self.observers:  # the pages (this worker's metrics: own only)
                    observer(told)
        return batch

    async def _read_latest_rounds(self, since: datetime) -> None:
        """For a worker that just took over: the results stored from ``since`` up to the read
        cursor again, applied to the monitor only (the pages have them already), so its
        classifier goes on from where the previous leader's was."""
        through = self._reader.cursor
        if through is None:
            through = self._reader.cursor = await self.store.results.newest_id()
        after = 0
        while True:
            rows = await self.store.results.stored_after(after, since=since)
            batch = [result for row_id, result in rows if row_id <= through]
            if batch:
                await self._apply(batch)
            if len(rows) < READ_BACK_BATCH or rows[-1][0] >= through:
                return
            after = rows[-1][0]

    async def reload(self, *, keep_classifier: bool = False) -> None:
        """The monitor as the database holds it now, started again as after a restart: what a
        worker does when it becomes the active monitor. ``keep_classifier``: what the others
        do every few seconds for their pages; their classifier, fed with every worker's
        results, goes on."""
        async with self.lock:
            now = self.now()
            stored = await load_state(self.store, now)
            if keep_classifier:
                self.monitor.restore(
                    stored.incidents,
                    stored.next_number,
                    stored.escalations,
                    now,
                    held=stored.held,
                )
                self.monitor.set_maintenance(engine_windows(stored.windows))
            else:
                self.monitor.take_over(
                    stored.incidents,
                    stored.next_number,
                    stored.escalations,
                    now,
                    held=stored.held,
                    maintenance=engine_windows(stored.windows),
                )
            self._stored_timeline = {i.number: len(i.timeline) for i in stored.incidents}
            self._dirty = False
        self.version.bump()
        self.changed.set()

    async def lead(self, poll: timedelta, lookback: timedelta) -> None:
        """While this worker is the active monitor: read the results the other workers stored
        and apply them (and, first, those stored from ``lookback`` before taking over, so the
        classifier sees the latest rounds again), every ``poll``; forever (cancelled on losing
        the lease). Every few polls the maintenance windows are read again too: another
        worker's console may have scheduled one."""
        await self._read_latest_rounds(self.clock.now() - lookback)
        windows = await self.store.maintenance.list()
        polls = 0
        while True:
            polls += 1
            if polls % MAINTENANCE_EVERY == 0:
                # A window scheduled, changed or cancelled on another worker's console.
                stored = await self.store.maintenance.list()
                if stored != windows:
                    windows = stored
                    await self.set_maintenance(stored)
            batch = await self._read_back()
            if batch:
                await self._apply(batch)
            if not self._reader.full:
                await self.clock.sleep(poll.total_seconds())

    async def follow(self, poll: timedelta, every: int = 3) -> None:
        """While another worker is the active monitor: every ``poll`` read the results the
        others stored, into this worker's classifier and pages (its status tiles show every
        target, not only those it probes), and every ``every`` polls the incidents, so its
        pages show what the active monitor stored."""
        polls = 0
        while True:
            leadership = self.leadership
            if leadership is not None and not leadership.leading:
                try:
                    batch = await self._read_back()
                    if batch:
                        self._follow_results(batch)
                except Exception as exc:
                    log.warning("results not read back", extra={"error": str(exc)})
                if polls % every == 0:
                    try:
                        current = await leadership.current()
                        self._leader_address = "" if current is None else current.address
                        await self.reload(keep_classifier=True)
                    except Exception as exc:
                        log.warning("incidents not read back", extra={"error": str(exc)})
                polls += 1
            if not self._reader.full:
                await self.clock.sleep(poll.total_seconds())

    async def set_maintenance(self, windows: Iterable[MaintenanceRecord]) -> None:
        async with self.lock:
            self.monitor.set_maintenance(engine_windows(windows))
        self.version.bump()
        self.changed.set()

    async def timers(self, max_wait: float = 60.0) -> None:
        """Sleep until the monitor's next due instant (or a change), then tick; forever."""
        while True:
            due = self.monitor.next_due()
            now = self.now()
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

    async def persist(
        self, outcome: Outcome, audit: AuditEntry | None = None, *, handover: int | None = None
    ) -> None:
        """Store what one step did in one transaction (with ``audit``, the audit line of the
        person's action it was, and ``handover`` marked done when the action came through
        another worker); call with :attr:`lock` held."""
        incidents = self._touched(outcome)
        quiet = not outcome.messages and not outcome.held and not outcome.released
        if not incidents and quiet and audit is None and handover is None:
            return
        now = self.now()
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
        fence = self.leadership.fence() if self.leadership is not None else None
        if self.leadership is not None and fence is None:
            raise Fenced("this worker is not the active monitor")
        generation = 0 if fence is None else fence.generation
        async with self.store.transaction(fence=fence) as tx:
            for incident in incidents:
                escalation = self.monitor.escalation_of(incident.number)
                await tx.incidents.save(
                    incident_record(incident, now, escalation),
                    generation=generation,
                    new=incident.number not in self._stored_timeline,
                )
            await tx.timeline.add_many(timeline)
            for message in outcome.messages:
                await tx.outbox.enqueue(_outbox_message(outbox_fields(message)))
            if audit is not None:
                await tx.audit.add(audit)
            for message in outcome.held:
                await tx.held.add(message)
            await tx.held.remove(outcome.released)
            if handover is not None:
                numbers = [e.incident for e in outcome.events if e.incident is not None]
                by = "" if self.leadership is None else self.leadership.holder
                result = {"incidents": list(dict.fromkeys(numbers))}
                await tx.handovers.complete(handover, result, now, by)
        self._stored_timeline.update(counts)
        self._forget_timelines()
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

    def _forget_timelines(self) -> None:
        """Count timelines only of the incidents the monitor still holds (it lets go of those
        resolved long ago), so this map stays as small as the monitor."""
        incidents = self.monitor.engine.incidents()
        if len(self._stored_timeline) <= len(incidents):
            return
        held = {incident.number for incident in incidents}
        self._stored_timeline = {n: c for n, c in self._stored_timeline.items() if n in held}

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
