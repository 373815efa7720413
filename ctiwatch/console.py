"""The real :class:`~ctiwatch.web.service.ConsoleService`: storage and the monitor behind the web.

Reads come from the store (incidents, timelines, results, maintenance, agents) and from the
monitor (the conditions that hold now). Every action goes through the :class:`Pipeline`: the
monitor changes under its lock and the change, its timeline entries and its messages are
persisted in one transaction. The same object answers the Twilio webhooks (SMS ``ACK 12``, a
key pressed during an alert call, delivery reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from alerting.maintenance import (
    NoticeAction,
    Recipient,
    WindowFacts,
    notice_prefix,
    notices,
    span_words,
)
from classifier.conditions import Condition, ConditionKind
from classifier.observation import CALL_SERVICES, Service
from ctiwatch.config import Config
from ctiwatch.handover import Handovers
from ctiwatch.kpi import current_month, read_kpi_report
from ctiwatch.persist import SYSTEM_ACTOR, NotLeader, Pipeline, StepFailed
from ctiwatch.readmodel import LiveRollups
from ctiwatch.storage import (
    AuditEntry,
    IncidentRecord,
    MaintenanceRecord,
    OutboxMessage,
    StorageError,
    Store,
    Transaction,
)
from ctiwatch.storage import TimelineEntry as StoredEntry
from ctiwatch.storage.handovers import Handover
from ctiwatch.web.service import (
    AgentState,
    AgentView,
    Breach,
    CustomerStatus,
    DeadLetterView,
    IncidentDetail,
    IncidentState,
    IncidentSummary,
    LocationStatus,
    MaintenanceRevisionView,
    MaintenanceView,
    MqttView,
    RecognitionRow,
    ScopeEntry,
    ServiceError,
    ServiceState,
    ServiceTile,
    StatusView,
    TimelineEntry,
    UserTile,
    WindowRequest,
    check_customer,
    check_month,
    check_priority_change,
    check_resolve,
    check_status_filter,
    check_window,
    conditions_still_hold,
    incident_not_found,
    incident_resolved,
    next_deadline,
    required_text,
    seen_by,
    step_not_stored,
    window_state,
)
from incidents.maintenance import (
    MaintenanceRefused,
    MaintenanceWindow,
    judge_window,
    recurrence_rule,
)
from incidents.model import ConditionsStillHold, Incident, IncidentError, IncidentStatus
from incidents.model import ScopeEntry as HeldEntry
from pipeline.monitor import Outcome
from sla.kpi import KpiReport
from sla.priority import Priority
from sla.words import service_name, window_words

log = logging.getLogger("ctiwatch.console")


def _log_failed_build(build: asyncio.Future[StatusView]) -> None:
    if not build.cancelled() and (error := build.exception()) is not None:
        log.error("building the status view failed: %s", error, exc_info=error)


DEAD_LETTERS_SHOWN = 10  # the latest dead letters on the status page
HISTORY_SHOWN = 10  # the latest resolved incidents on the status page
# Twilio statuses that say a page reached its person (the timeline says so).
REACHED_STATUSES = frozenset({"delivered", "completed", "read"})
FIGURES_EVERY = timedelta(seconds=1)  # new results alone rebuild the status view at most this often
# ... and at most every (targets / this) seconds: a view of 10,000 targets (its page, its JSON)
# is rebuilt every 5 s while results stream in, so the work a second stays about the same.
FIGURES_TARGETS_PER_SECOND = 2_000
VIEW_MAX_AGE = timedelta(seconds=5)  # "probed 12s ago", agents' counts: rebuilt at least this often
_DOWN = frozenset({ConditionKind.LOCATION_UNAVAILABLE, ConditionKind.USER_UNAVAILABLE})
_BREACHES: tuple[Breach, ...] = ("response", "update", "repair")
# ``incident`` -> incident number, ``detail`` -> what happened, for the timeline.
DeliveryNote = Callable[[int, str, str], None]
# The handover the active monitor is applying in this task (ctiwatch.handover): set around the
# console method it runs for it, read by ``_act``, whose step marks the handover done.
_APPLYING: ContextVar[int | None] = ContextVar("ctiwatch_applying_handover", default=None)


@dataclass(frozen=True, slots=True)
class AgentHealthView:
    """An agent's health as ingestion last judged it (``stale`` is not stored)."""

    name: str
    health: AgentState
    last_seen: datetime
    results: int = 0  # results received from it since ctiwatch started
    locations: tuple[str, ...] = ()  # what its results were about
    reason: str = ""  # why it is offline or stale


class ConsoleServiceImpl:
    """``ConsoleService`` and ``TwilioActions`` over the store and the monitor."""

    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        *,
        agents: Callable[[], list[AgentHealthView]] | None = None,
        mqtt: Callable[[], MqttView] | None = None,
        handovers: Handovers | None = None,
    ) -> None:
        self._config = config
        self._pipeline = pipeline
        # Several workers: people's actions taken in here while another worker leads are
        # handed to it (ctiwatch.handover).
        self._handovers = handovers
        self._store: Store = pipeline.store
        self._clock = pipeline.clock
        self._monitor = pipeline.monitor
        self._calendar = pipeline.monitor.policy.calendar
        # A tile's recognition figure covers the degraded rule's window, so the card shows the
        # figure the rule judges, and states the rule without a second (older) figure.
        self._rate_window = config.classification.degraded_window
        self._rate_rule = f"recognition below {config.classification.degraded_rate * 100:g}%"
        self._customers = {c.id: c for c in config.topology.customers}
        self._locations = {loc.id for c in config.topology.customers for loc in c.locations}
        self._agents = agents
        self._mqtt = mqtt
        # The read model: the results' figures in memory, fed by the pipeline, and the last
        # built view with the state version it was built at.
        self._live = LiveRollups(self._rate_window)
        targets = len(CALL_SERVICES) * sum(
            len(location.users)
            for customer in config.topology.customers
            for location in customer.locations
        )
        self._figures_every = max(
            FIGURES_EVERY, timedelta(seconds=targets / FIGURES_TARGETS_PER_SECOND)
        )
        pipeline.observers.append(self._live.observe)
        self._building = asyncio.Lock()
        self._view: StatusView | None = None
        self._built: tuple[int, int, tuple[object, ...]] = (-1, -1, ())
        # When the built view's epoch ends: the next start or end of a maintenance window.
        self._epoch_until = datetime.min.replace(tzinfo=UTC)
        self._builds = 0
        self._epoch = 0  # a new one for every build a caller waits for
        self._behind: asyncio.Future[StatusView] | None = None
        # How old a view of the epoch may be and still be served while the next is built.
        self._behind_at_most = self._figures_every + VIEW_MAX_AGE
        self._history: tuple[int, tuple[IncidentSummary, ...]] | None = None
        self._known_tiles: dict[tuple[str, str, str, str], UserTile] = {}
        self._known_rows: dict[tuple[str, str, str], RecognitionRow] = {}

    @property
    def builds(self) -> int:
        """How many status views were built (the benchmarks report it)."""
        return self._builds

    # --- status --------------------------------------------------------------------------------

    async def status(self) -> StatusView:
        """The status as of the last change: built from memory (the monitor, the live
        rollups) once per state version and served as is until the next one. It never ticks
        the pipeline nor reads raw results: the timers task ticks when something is due.

        A view is rebuilt when an incident, a condition, a window or an agent changed; when
        only new results moved its figures, at most every :data:`FIGURES_EVERY` (longer for
        many targets, see :data:`FIGURES_TARGETS_PER_SECOND`); and after
        :data:`VIEW_MAX_AGE` or when a maintenance window starts or ends.

        When only figures moved (or its "ago"s aged) and the view is younger than the figures'
        interval plus :data:`VIEW_MAX_AGE`, callers get it at once while the next one is built
        behind it (:meth:`_build_behind`): nobody waits for figures. A view a caller waits for
        (something else changed, or the view is older than that) begins a new *epoch*; views of
        one epoch differ only in figures, and the web answers with the last rendering of the
        epoch while the next one renders (``FragmentCache``). So asking after an incident,
        condition, window or agent change, or after that interval, always shows it."""
        now = self._clock.now()
        view = self._view
        if view is not None and self._same_epoch(view, now):
            if self._fresh(view, now):
                return view
            if now - view.generated_at < self._behind_at_most:
                self._build_behind()
                return view
        return await self._rebuild(waited=True)

    async def caught_up(self) -> StatusView:
        """The view with everything known now: a caller's, once the build it may have
        started behind the served view is done."""
        await self.status()
        if self._behind is not None:
            await asyncio.shield(self._behind)
        return await self.status()

    def _build_behind(self) -> None:
        """Build the next view of this epoch in the background (unless one is being built)."""
        if self._building.locked() or (self._behind is not None and not self._behind.done()):
            return
        self._behind = asyncio.ensure_future(self._rebuild(waited=False))
        self._behind.add_done_callback(_log_failed_build)

    async def _rebuild(self, *, waited: bool) -> StatusView:
        """A new view (or the one just built by whoever held the lock). One that a caller
        waits for begins a new epoch: what it renders is waited for too."""
        async with self._building:
            now = self._clock.now()
            view = self._view
            if view is not None and self._fresh(view, now):
                return view
            if waited or view is None or not self._same_epoch(view, now):
                self._epoch += 1
            version = self._pipeline.version
            built = (version.value, version.major, self._agents_key())
            view = replace(await self._build_status(now), state=built[0])  # as it began
            self._built = built
            self._view = view
            return view

    def _same_epoch(self, view: StatusView, now: datetime) -> bool:
        """Only figures can have moved since ``view`` was built: no incident, condition,
        window or agent changed and no window began or ended (time passing and new results
        only move its figures and its "ago"s)."""
        if not view.generated_at <= now < self._epoch_until:
            return False
        _, major, agents = self._built
        return self._pipeline.version.major == major and self._agents_key() == agents

    def _fresh(self, view: StatusView, now: datetime) -> bool:
        if not self._same_epoch(view, now):
            return False
        age = now - view.generated_at
        if age >= VIEW_MAX_AGE:
            return False
        return self._pipeline.version.value == self._built[0] or age < self._figures_every

    def _agents_key(self) -> tuple[object, ...]:
        """What of the agents and the broker changes a view at once (not the counts)."""
        agents = self._agents() if self._agents is not None else []
        mqtt = self._mqtt() if self._mqtt is not None else None
        return (tuple((a.name, a.health, a.reason, a.locations) for a in agents), mqtt)

    async def _build_status(self, now: datetime) -> StatusView:
        live = self._live
        if not live.loaded:
            await self._load_live(now)
        live.prune(now)
        async with self._pipeline.lock:
            held = self._monitor.classifier.conditions(now)
            suppressed = self._monitor.engine.in_maintenance()
            open_incidents = sorted(self._monitor.engine.open_incidents(), key=lambda i: -i.number)
        windows = await self._store.maintenance.list(ending_after=now)
        active = [o for w in windows if not w.cancelled for o in w.windows if o.active_at(now)]
        boundaries = [
            at
            for w in windows
            if not w.cancelled
            for o in w.windows
            for at in (o.start, o.end)
            if at > now
        ]
        self._epoch_until = min(boundaries, default=datetime.max.replace(tzinfo=UTC))
        # The conditions by place, so that a tile finds its own without scanning them all.
        held_at: dict[tuple[str, str, Service], list[Condition]] = {}
        for condition in held:
            held_at.setdefault(
                (condition.customer, condition.location, condition.service), []
            ).append(condition)
        customers = []
        for customer in self._config.topology.customers:
            await asyncio.sleep(0)  # a customer at a time: the loop runs between them
            incident = next(
                (i for i in open_incidents if i.automatic and i.customer == customer.id), None
            )
            locations = []
            for location in customer.locations:
                tiles = [
                    self._tile(
                        customer.id,
                        location.id,
                        service,
                        now,
                        held_at.get((customer.id, location.id, service), []),
                        suppressed,
                        active,
                        incident,
                    )
                    for service in CALL_SERVICES
                ]
                locations.append(LocationStatus(location.id, location.name, tuple(tiles)))
            customers.append(CustomerStatus(customer.id, customer.name, tuple(locations)))
        recognition, users = await self._people(customers, held_at, now)
        history = await self._resolved_history()
        self._builds += 1
        return StatusView(
            generated_at=now,
            customers=tuple(customers),
            agents=tuple(await self._agent_views()),
            open_incidents=tuple(self._summary_of(i) for i in open_incidents),
            maintenance=tuple(
                [await self._window_view(w, now) for w in windows if not w.cancelled]
            ),
            mqtt=self._mqtt_view(),
            recognition_window=window_words(self._rate_window),
            dead_letters=tuple(
                DeadLetterView(d.parked_at, d.source, d.key, d.reason)
                for d in await self._store.dead_letters.latest(DEAD_LETTERS_SHOWN)
            ),
            version=self._builds,
            epoch=self._epoch,
            history=history,
            recognition=tuple(recognition),
            users=tuple(users),
        )

    async def _load_live(self, now: datetime) -> None:
        """The read model's first load: the stored minute rollups of the window and the
        latest result of every target, streamed in chunks with the event loop running between
        them. The queries start while no batch is being stored, and every batch after that
        is observed: each result is counted once, from the store or from the pipeline (with
        several workers, the rows the others store later are read back and told to it)."""
        since = now - self._rate_window - timedelta(minutes=1)
        async with contextlib.AsyncExitStack() as stack:
            async with self._pipeline.results_held():
                if self._pipeline.leadership is not None:
                    newest = await self._store.results.newest_id()
                    self._pipeline.pages_loaded_through(newest)
                rows, times = await stack.enter_async_context(
                    self._store.results.live_rows(since, now + timedelta(minutes=1), chunk=200)
                )
                self._live.start()
            await self._live.load(rows, times)

    async def _resolved_history(self) -> tuple[IncidentSummary, ...]:
        """The latest resolved incidents, read again only when an incident changed."""
        major = self._pipeline.version.major
        if self._history is None or self._history[0] != major:
            found = await self.incidents("resolved", None, HISTORY_SHOWN)
            self._history = (major, tuple(found))
        return self._history[1]

    async def _people(
        self,
        customers: list[CustomerStatus],
        held_at: dict[tuple[str, str, Service], list[Condition]],
        now: datetime,
    ) -> tuple[list[RecognitionRow], list[UserTile]]:
        """Recognition per customer, location and user (the live rollups' trailing window)
        and every user's every service as the wall screen shows it. A customer at a time,
        the event loop running between them (10,000 user-services are tens of ms)."""
        live = self._live
        span = live.span(now)
        services = [(service, service.value) for service in CALL_SERVICES]
        # The last build's tiles and rows, kept when unchanged: a build then makes objects
        # only for what changed (fewer allocations, fewer garbage collections at 10,000).
        known_tiles, known_rows = self._known_tiles, self._known_rows
        rows: list[RecognitionRow] = []
        users: list[UserTile] = []
        for customer, status in zip(self._config.topology.customers, customers, strict=True):
            await asyncio.sleep(0)
            name = customer.name or customer.id
            mine: list[RecognitionRow] = []
            total = [0, 0]
            for location, shown in zip(customer.locations, status.locations, strict=True):
                place = [0, 0]
                people: list[RecognitionRow] = []
                location_name = location.name or location.id
                # Per service: the tile's state and this place's conditions by user.
                here = []
                for service, value in services:
                    by_user: dict[str | None, list[Condition]] = {}
                    for c in held_at.get((customer.id, location.id, service), ()):
                        by_user.setdefault(c.user, []).append(c)
                    here.append(
                        (
                            value,
                            next(t.state for t in shown.services if t.service == value),
                            by_user,
                        )
                    )
                for user in location.users:
                    calls = misses = 0
                    for value, tile_state, by_user in here:
                        key = (customer.id, location.id, user.id, value)
                        got, last = live.user_in(key, span)
                        counts = got.counts
                        calls += counts.calls
                        misses += counts.misses
                        state = self._user_state(tile_state, by_user.get(user.id, ()), last)
                        tile = known_tiles.get(key)
                        if tile is None or (tile.state, tile.recognition_rate) != (
                            state,
                            counts.rate,
                        ):
                            tile = known_tiles[key] = UserTile(
                                customer.id,
                                name,
                                location.id,
                                location_name,
                                user.id,
                                value,
                                state,
                                counts.rate,
                            )
                        users.append(tile)
                    row = known_rows.get((customer.id, location.id, user.id))
                    if row is None or (row.calls, row.misses) != (calls, misses):
                        row = known_rows[(customer.id, location.id, user.id)] = _recognition(
                            "user", customer.id, user.id, [calls, misses]
                        )
                    people.append(row)
                    place = [place[0] + calls, place[1] + misses]
                mine.append(_recognition("location", customer.id, location_name, place))
                mine += people
                total = [total[0] + place[0], total[1] + place[1]]
            rows.append(_recognition("customer", customer.id, name, total))
            rows += mine
        return rows, users

    @staticmethod
    def _user_state(
        place: ServiceState, mine: Sequence[Condition], last: datetime | None
    ) -> ServiceState:
        if place in ("maintenance", "down"):
            return place
        if any(c.kind in _DOWN and not c.recovering for c in mine):
            return "down"
        if mine or place == "degraded":
            return "degraded"
        return "ok" if last is not None else "unknown"

    def _mqtt_view(self) -> MqttView | None:
        """The broker as ingestion reports it; ``disabled`` when MQTT is off in the config."""
        if self._mqtt is not None:
            return self._mqtt()
        settings = self._config.mqtt
        if not settings.enabled:
            return MqttView(f"{settings.host}:{settings.port}", "disabled")
        return None

    def _tile(
        self,
        customer: str,
        location: str,
        service: Service,
        now: datetime,
        held: list[Condition],
        suppressed: list[Condition],
        active: list[MaintenanceWindow],
        incident: Incident | None,
    ) -> ServiceTile:
        def here(c: Condition) -> bool:
            return c.customer == customer and c.location == location and c.service is service

        mine = [c for c in held if here(c)]  # held: this place's conditions
        last_result_at = self._live.last_result_at(customer, location, service)
        state: ServiceState
        if any(w.covers_place(service, customer, location) for w in active) or any(
            here(c) for c in suppressed
        ):
            state = "maintenance"
        elif any(c.kind in _DOWN and not c.recovering for c in mine):
            state = "down"
        elif mine:
            state = "degraded"
        elif last_result_at is not None:
            state = "ok"
        else:
            state = "unknown"
        figures = self._live.place(customer, location, service, now)
        counts = figures.counts
        in_scope = incident is not None and any(
            e.service is service and e.location == location for e in incident.active_scope()
        )
        return ServiceTile(
            service=service.value,
            state=state,
            last_probe_at=last_result_at,
            recognition_rate=counts.rate,
            calls=counts.calls,
            latency_p95_ms=figures.latency_p95_ms,
            incident_number=incident.number if incident is not None and in_scope else None,
            incident_priority=int(incident.priority) if incident is not None and in_scope else None,
            detail="; ".join(f"{c.user or 'all users'}: {self._why(c)}" for c in mine)[:200],
            seen_down_by=tuple(
                sorted({c.source for c in mine if c.kind in _DOWN and not c.recovering})
            ),
        )

    def _why(self, condition: Condition) -> str:
        """Why a condition holds, in one line; the degraded rule's figure is the tile's own."""
        if condition.kind is ConditionKind.LOCATION_DEGRADED:
            return self._rate_rule
        return condition.reason

    async def _agent_views(self) -> list[AgentView]:
        """Every agent ever heard of (the store), as ingestion judges it now when it has
        heard of it."""
        judged = {a.name: a for a in self._agents()} if self._agents is not None else {}
        stored = {r.name: r for r in await self._store.agents.list()}
        views: list[AgentView] = []
        for name in sorted(stored.keys() | judged.keys()):
            live, record = judged.get(name), stored.get(name)
            if live is not None:
                health, last_seen = live.health, live.last_seen
                results, locations, reason = live.results, live.locations, live.reason
            else:
                assert record is not None
                health, last_seen = record.status, record.last_seen
                meta = record.meta
                results = _int(meta.get("results"))
                locations = tuple(str(x) for x in meta.get("locations") or ())
                reason = str(meta.get("reason") or "")
            views.append(
                AgentView(
                    name,
                    health,
                    last_seen,
                    ", ".join(locations),
                    results_received=results,
                    locations=locations,
                    reason=reason if health != "online" else "",
                )
            )
        return views

    # --- incidents -----------------------------------------------------------------------------

    async def incidents(
        self, status: str | None, customer: str | None, limit: int
    ) -> list[IncidentSummary]:
        check_status_filter(status)
        stored: Literal["open", "resolved"] | None = None
        if status in ("active", "open", "acknowledged"):
            stored = "open"
        elif status == "resolved":
            stored = "resolved"
        fetch = limit if status in (None, "active", "resolved") else max(limit, 1000)
        records = await self._store.incidents.list(stored, customer, fetch)
        summaries = [self._summary_of_record(r) for r in records]
        if status in ("open", "acknowledged"):
            summaries = [s for s in summaries if s.status == status]
        return summaries[:limit]

    async def incident(self, number: int) -> IncidentDetail | None:
        record = await self._store.incidents.get(number)
        if record is None:
            return None
        incident = Incident.from_dict(dict(record.state))
        timeline = await self._store.incidents.timeline(number)
        entries = sorted(
            incident.scope.values(),
            key=lambda e: (e.service.value, e.location, e.user or "", e.source),
        )
        return IncidentDetail(
            summary=self._summary_of_record(record),
            scope=tuple(
                ScopeEntry(
                    service=e.service.value,
                    location=e.location,
                    user=e.user,
                    priority=int(e.priority),
                    condition=e.reason + (" (cleared)" if e.cleared_at is not None else ""),
                    cleared=e.cleared_at is not None,
                    source=e.source,
                    seen_by=seen_by(e.source),
                )
                for e in entries
            ),
            response_due=incident.response_due,
            update_due=incident.update_due,
            repair_due=incident.repair_due,
            timeline=tuple(_timeline_view(entry) for entry in timeline),
        )

    # --- reports -------------------------------------------------------------------------------

    async def kpi_report(self, month: str | None) -> KpiReport:
        now = self._clock.now()
        policy = self._monitor.policy
        chosen = current_month(policy, now) if month is None else check_month(month)
        try:
            return await read_kpi_report(self._store, policy, chosen, now=now)
        except (StorageError, SQLAlchemyError):
            raise ServiceError(
                "could not read the incidents: the database is not reachable; try again in a "
                "moment",
                status=503,
            ) from None

    # --- people's actions ------------------------------------------------------------------------

    async def acknowledge(self, number: int, actor: str, *, address: str = "") -> None:
        def action(now: datetime) -> Outcome:
            incident = self._open_incident(number, "acknowledge")
            if incident.status is IncidentStatus.ACKNOWLEDGED:
                raise ServiceError(f"incident {number} is already acknowledged", status=409)
            return self._monitor.acknowledge(number, now, actor)

        audit = self._audit(actor, address, "incident.ack")
        args = {"number": number, "actor": actor, "address": address}
        await self._act(number, "acknowledge", action, audit, ("acknowledge", args))

    async def update(self, number: int, actor: str, text: str, *, address: str = "") -> None:
        text = required_text(text, "text")

        def action(now: datetime) -> Outcome:
            self._open_incident(number, "update")
            return self._monitor.update(number, now, actor, text)

        audit = self._audit(actor, address, "incident.update", text)
        args = {"number": number, "actor": actor, "text": text, "address": address}
        await self._act(number, "update", action, audit, ("update", args))

    async def change_priority(
        self, number: int, actor: str, priority: int, reason: str, *, address: str = ""
    ) -> None:
        reason = check_priority_change(priority, reason)

        def action(now: datetime) -> Outcome:
            incident = self._open_incident(number, "change the priority of")
            if incident.priority == priority:
                raise ServiceError(f"incident {number} is already P{priority}", "priority", 409)
            return self._monitor.change_priority(number, Priority(priority), now, actor, reason)

        audit = self._audit(actor, address, "incident.priority", f"P{priority}: {reason}")
        args = {
            "number": number,
            "actor": actor,
            "priority": priority,
            "reason": reason,
            "address": address,
        }
        await self._act(number, "change the priority of", action, audit, ("change_priority", args))

    async def resolve(
        self,
        number: int,
        actor: str,
        reason: str = "",
        force: bool = False,
        *,
        address: str = "",
    ) -> None:
        """A person's resolve; while conditions in scope hold only with ``force`` and a
        reason. Those conditions are then forgotten, not silenced (the monitor's rule)."""
        reason = check_resolve(reason, force)

        def action(now: datetime) -> Outcome:
            incident = self._open_incident(number, "resolve")
            try:
                return self._monitor.resolve(number, now, actor, reason, force=force)
            except ConditionsStillHold:  # the rule is the core's; the words are the console's
                holding = [_holding_words(e) for e in incident.active_scope()]
                raise conditions_still_hold(number, holding) from None

        detail = f"forced: {reason}" if force else reason
        audit = self._audit(actor, address, "incident.resolve", detail)
        args = {"number": number, "actor": actor, "reason": reason, "force": force}
        await self._act(number, "resolve", action, audit, ("resolve", args | {"address": address}))

    async def reopen(self, number: int, actor: str, *, address: str = "") -> None:
        def action(now: datetime) -> Outcome:
            incident = self._known_incident(number)
            if incident.is_open:
                raise ServiceError(f"incident {number} is not resolved", status=409)
            return self._monitor.reopen(number, now, actor)

        audit = self._audit(actor, address, "incident.reopen")
        args = {"number": number, "actor": actor, "address": address}
        await self._act(number, "reopen", action, audit, ("reopen", args))

    async def open_question(
        self, customer: str, actor: str, text: str, *, address: str = ""
    ) -> int:
        check_customer(customer, self._customers)
        text = required_text(text, "text")
        args = {"customer": customer, "actor": actor, "text": text, "address": address}
        numbers = await self._act(
            None,
            "open a question for",
            lambda now: self._monitor.open_question(customer, now, actor, text),
            self._audit(actor, address, "incident.question", f"{customer}: {text}"),
            ("open_question", args),
        )
        if not numbers:
            raise ServiceError("the question could not be opened", status=409)
        return numbers[0]

    def _audit(
        self, actor: str, address: str, action: str, detail: str = ""
    ) -> Callable[[Outcome], AuditEntry | None]:
        """The audit line of a person's action on an incident, made from what it did."""

        def line(outcome: Outcome) -> AuditEntry | None:
            numbers = sorted({e.incident for e in outcome.events if e.incident is not None})
            target = ", ".join(f"incident {n}" for n in numbers)
            return AuditEntry(self._clock.now(), actor, action, target, detail, address)

        return line

    async def _act(
        self,
        number: int | None,
        verb: str,
        action: Callable[[datetime], Outcome],
        audit: Callable[[Outcome], AuditEntry | None] | None,
        handed: tuple[str, dict[str, Any]],
    ) -> list[int]:
        """Run a person's action (``action``, with its ``audit`` line) on the monitor, or, while
        another worker is the active monitor, hand it over (``handed``: the method's name and
        arguments, as the active monitor runs it again); the incidents its events were about.
        The active monitor checks everything again against its own state."""
        applying = _APPLYING.get()
        if applying is None and self._handovers is not None and self._handovers.needed:
            numbers = await self._handed_over(handed, verb)
        else:
            try:
                outcome = await self._pipeline.act(action, audit, handover=applying)
            except IncidentError as exc:
                text = str(exc)
                raise ServiceError(text, status=404 if "does not exist" in text else 409) from exc
            except NotLeader as exc:
                if applying is not None or self._handovers is None:
                    raise ServiceError(f"could not {verb} it here: {exc}", status=503) from None
                outcome = None  # it stepped down just now: hand it to the next one
            except StepFailed:
                raise step_not_stored(verb) from None
            if outcome is None:
                numbers = await self._handed_over(handed, verb)
            else:
                found = [e.incident for e in outcome.events if e.incident is not None]
                numbers = list(dict.fromkeys(found))
        if not numbers:
            what = f"incident {number}" if number is not None else "it"
            raise ServiceError(f"cannot {verb} {what} in its current state", status=409)
        return numbers

    async def _handed_over(self, handed: tuple[str, dict[str, Any]], verb: str) -> list[int]:
        """``handed`` applied by the active monitor: the incidents its events were about."""
        assert self._handovers is not None
        kind, args = handed
        result = await self._handovers.forward(kind, args, verb)
        with contextlib.suppress(Exception):  # the pages read it again shortly anyway
            await self._pipeline.reload()  # the person's next page shows what they did
        found = result.get("incidents")
        return [n for n in found if isinstance(n, int)] if isinstance(found, list) else []

    async def apply_handover(self, handover: Handover) -> None:
        """On the active monitor: run a handed-over action as the worker that took it in asked
        (the same method, the same checks, against this worker's state); its step marks the
        handover done, a refusal is its answer."""
        assert self._handovers is not None
        methods: dict[str, Callable[..., Any]] = {
            "acknowledge": self.acknowledge,
            "update": self.update,
            "change_priority": self.change_priority,
            "resolve": self.resolve,
            "reopen": self.reopen,
            "open_question": self.open_question,
            "delivery_status": self.delivery_status,
        }
        method = methods.get(handover.kind)
        token = _APPLYING.set(handover.id)
        try:
            if method is None:
                raise ServiceError(f"unknown action {handover.kind!r}", status=400)
            try:
                await method(**handover.args)
            except TypeError as exc:  # a worker of another version asked it differently
                raise ServiceError(f"{handover.kind}: {exc}", status=400) from None
            # An action that changed nothing (a delivery report on no incident) is done too.
            await self._handovers.answer(handover, {"incidents": []})
        except ServiceError as exc:
            await self._handovers.refuse(handover, exc)
        except Exception as exc:
            log.exception("a handed-over action failed", extra={"handover": handover.id})
            await self._handovers.refuse(
                handover, ServiceError(f"could not {handover.kind}: {exc}", status=500)
            )
        finally:
            _APPLYING.reset(token)
        log.info(
            "handed-over action answered",
            extra={"handover": handover.id, "kind": handover.kind, "from": handover.origin},
        )

    def _known_incident(self, number: int) -> Incident:
        try:
            return self._monitor.engine.incident(number)
        except IncidentError:
            raise incident_not_found(number) from None

    def _open_incident(self, number: int, verb: str) -> Incident:
        incident = self._known_incident(number)
        if not incident.is_open:
            raise incident_resolved(number, verb)
        return incident

    # --- maintenance ---------------------------------------------------------------------------

    async def maintenance(self) -> list[MaintenanceView]:
        now = self._clock.now()
        windows = await self._store.maintenance.list()
        views = [await self._window_view(w, now, history=True) for w in windows]
        return sorted(views, key=lambda v: (v.start, v.id), reverse=True)

    async def maintenance_window(self, id: int) -> MaintenanceView:
        window = await self._store.maintenance.get(id)
        if window is None:
            raise ServiceError(f"maintenance window {id} does not exist", status=404)
        return await self._window_view(window, self._clock.now(), history=True)

    def _judged(self, window: WindowRequest, now: datetime, *, notice: bool) -> MaintenanceRecord:
        """The window a person asks for, judged by the SLA's rules (refused: ServiceError
        naming the field); ``notice``: whether the minimum notice applies."""
        reason = check_window(
            window, now=now, known_customers=self._customers, known_locations=self._locations
        )
        emergency = window.emergency
        justification = required_text(window.justification, "justification") if emergency else ""
        rule = window.recurrence.strip() if window.recurrence else None
        try:
            spans = judge_window(
                self._calendar,
                window.start,
                window.end,
                now=now,
                min_notice=self._config.maintenance.min_notice if notice else None,
                emergency=emergency,
                justification=justification,
                recurrence=rule,
            )
            rule = recurrence_rule(rule) if rule else None
        except MaintenanceRefused as exc:
            raise ServiceError(exc.message, exc.field) from None
        return MaintenanceRecord(
            starts_at=window.start.astimezone(UTC),
            ends_at=window.end.astimezone(UTC),
            reason=reason,
            created_by="",
            created_at=now,
            services=tuple(window.services or ()),
            customers=tuple(window.customers or ()),
            locations=tuple(window.locations or ()),
            recurrence=rule,
            occurrences=tuple(spans) if rule else (),
            emergency=emergency,
            justification=justification,
        )

    async def schedule_maintenance(
        self, window: WindowRequest, actor: str, *, address: str = ""
    ) -> MaintenanceView:
        now = self._clock.now()
        asked = self._judged(window, now, notice=True)
        try:
            async with self._store.transaction() as tx:
                stored = await tx.maintenance.add(replace(asked, created_by=actor))
                await self._enqueue_notices(tx, stored, "scheduled", now)
                # In local time like every time people read (the API may send any offset).
                detail = (
                    f"{span_words((window.start, window.end), self._calendar.zone)}: {asked.reason}"
                )
                await tx.audit.add(
                    AuditEntry(
                        now,
                        actor,
                        "maintenance.schedule",
                        f"maintenance window {stored.id}",
                        detail,
                        address,
                    )
                )
        except (StorageError, SQLAlchemyError):
            raise step_not_stored("schedule") from None
        await self._reload_maintenance()
        log.info(
            "maintenance window scheduled",
            extra={
                "window": stored.id,
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
            },
        )
        return await self._window_view(stored, now, history=True)

    async def change_maintenance(
        self, id: int, window: WindowRequest, actor: str, why: str, *, address: str = ""
    ) -> MaintenanceView:
        actor = required_text(actor, "actor")
        why = required_text(why, "why")
        now = self._clock.now()
        before = await self._changeable(id, now, "change")
        moved = window.start != before.starts_at
        if moved and before.starts_at <= now:
            raise ServiceError(
                f"maintenance window {id} has started: its start cannot move (change its end, "
                "or cancel it)",
                "start",
            )
        asked = self._judged(window, now, notice=moved)
        try:
            async with self._store.transaction() as tx:
                changed = await tx.maintenance.change(id, asked, actor, now, why)
                if changed is None:
                    raise ServiceError(f"maintenance window {id} cannot be changed", status=409)
                await tx.outbox.drop_pending(notice_prefix(id))
                # Customers the window no longer covers hear of the change too.
                await self._enqueue_notices(tx, changed, "changed", now, why, also=before)
                await tx.audit.add(
                    AuditEntry(
                        now, actor, "maintenance.change", f"maintenance window {id}", why, address
                    )
                )
        except (StorageError, SQLAlchemyError):
            raise step_not_stored("change") from None
        await self._reload_maintenance()
        log.info("maintenance window changed", extra={"window": id, "by": actor})
        return await self._window_view(changed, now, history=True)

    async def cancel_maintenance(
        self, id: int, actor: str, why: str = "", *, address: str = ""
    ) -> MaintenanceView:
        """The window stays stored (history) as cancelled by ``actor`` now; it no longer
        suppresses anything, its pending notices are dropped and its customers told."""
        actor = required_text(actor, "actor")
        why = why.strip()
        if why:
            why = required_text(why, "why")
        now = self._clock.now()
        await self._changeable(id, now, "cancel")
        try:
            async with self._store.transaction() as tx:
                cancelled = await tx.maintenance.cancel(id, actor, now, why)
                assert cancelled is not None
                await tx.outbox.drop_pending(notice_prefix(id))
                await self._enqueue_notices(tx, cancelled, "cancelled", now, why)
                await tx.audit.add(
                    AuditEntry(
                        now, actor, "maintenance.cancel", f"maintenance window {id}", why, address
                    )
                )
        except (StorageError, SQLAlchemyError):
            raise step_not_stored("cancel") from None
        await self._reload_maintenance()
        log.info("maintenance window cancelled", extra={"window": id, "by": actor})
        return await self._window_view(cancelled, now, history=True)

    async def _changeable(self, id: int, now: datetime, verb: str) -> MaintenanceRecord:
        window = await self._store.maintenance.get(id)
        if window is None:
            raise ServiceError(f"maintenance window {id} does not exist", status=404)
        if window.cancelled:
            raise ServiceError(
                f"maintenance window {id} has been cancelled by {window.cancelled_by}", status=409
            )
        if window.series_ends_at <= now:
            raise ServiceError(f"maintenance window {id} has ended", status=409)
        return window

    async def _enqueue_notices(
        self,
        tx: Transaction,
        window: MaintenanceRecord,
        action: NoticeAction,
        now: datetime,
        why: str = "",
        also: MaintenanceRecord | None = None,
    ) -> None:
        """The notices of ``action`` to the contacts of the customers ``window`` (and
        ``also``, what it was before a change) covers, in the same transaction."""
        assert window.id is not None
        tokens = await self._store.customer_links.tokens()
        recipients = self._recipients(window, tokens)
        if also is not None:
            known = {(r.customer, r.email) for r in recipients}
            recipients += [
                r for r in self._recipients(also, tokens) if (r.customer, r.email) not in known
            ]
        facts = WindowFacts(
            id=window.id,
            revision=window.revision,
            occurrences=window.spans,
            services=tuple(service_name(s) for s in window.services),
            reason=window.reason,
            emergency=window.emergency,
            justification=window.justification,
            recurrence=window.recurrence,
        )
        for notice in notices(
            facts,
            recipients,
            action,
            now,
            timezone=self._config.sla.timezone,
            reminder_before=self._config.maintenance.reminder_before,
            why=why,
        ):
            await tx.outbox.enqueue(
                OutboxMessage(
                    idempotency_key=notice.key,
                    incident_number=None,
                    channel="email",
                    recipient=notice.to,
                    kind=notice.kind,
                    subject=notice.subject,
                    body=notice.text,
                    payload={"maintenance": window.id, "html": notice.html},
                    created_at=now,
                    not_before=notice.due,
                )
            )
        self._pipeline.outbox_ready.set()

    def _recipients(self, window: MaintenanceRecord, tokens: dict[str, str]) -> list[Recipient]:
        """The contacts (with an e-mail address) of the customers the window covers, each
        with the link of its own customer's status page (``tokens``: customer -> link token)."""
        found: list[Recipient] = []
        for customer in self._config.topology.customers:
            if window.customers and customer.id not in window.customers:
                continue
            locations = [
                loc
                for loc in customer.locations
                if not window.locations or loc.id in window.locations
            ]
            if not locations or not customer.contact.email:
                continue
            found.append(
                Recipient(
                    customer=customer.id,
                    customer_name=customer.name or customer.id,
                    email=customer.contact.email,
                    contact_name=customer.contact.name,
                    locations=tuple(loc.name or loc.id for loc in locations)
                    if window.locations
                    else (),
                    status_url=self._status_url(customer.id, customer.public, tokens),
                )
            )
        return found

    def _status_url(self, customer: str, public: bool, tokens: dict[str, str]) -> str:
        """``customer``'s own status page at ``web.public_url``: its public address when config
        makes it public, else its link; "" when it has neither or there is no public_url."""
        base = self._config.web.public_url
        if not base:
            return ""
        base = base.rstrip("/")
        if public:
            return f"{base}/status/c/{customer}"
        token = tokens.get(customer)
        return f"{base}/status/{token}" if token else ""

    async def _reload_maintenance(self) -> None:
        await self._pipeline.set_maintenance(await self._store.maintenance.list())

    # --- Twilio webhooks (TwilioActions) ---------------------------------------------------------

    async def status_text(self) -> str:
        async with self._pipeline.lock:
            incidents = sorted(self._monitor.engine.open_incidents(), key=lambda i: i.number)
        if not incidents:
            return "ctiwatch: no open incidents."
        parts = [
            f"#{i.number} P{int(i.priority)} {i.customer} {i.status.value}" for i in incidents[:8]
        ]
        more = f" (+{len(incidents) - 8} more)" if len(incidents) > 8 else ""
        return "ctiwatch open: " + "; ".join(parts) + more

    async def delivery_status(
        self, provider_id: str, status: str, recipient: str, failed: bool
    ) -> None:
        """Twilio's delivery report: every one is logged; a page that reached its person
        (``delivered``, ``completed``) goes on the incident's timeline, and one that failed
        or was not answered too, with the next escalation step paged at once."""
        extra = {"provider_id": provider_id, "status": status, "to": recipient}
        if not failed:
            log.info("delivery report", extra=extra)
            if status in REACHED_STATUSES:
                await self._note_reached(provider_id, status, recipient)
            return
        applying = _APPLYING.get()
        if applying is None and self._handovers is not None and self._handovers.needed:
            args = {
                "provider_id": provider_id,
                "status": status,
                "recipient": recipient,
                "failed": failed,
            }
            await self._handed_over(("delivery_status", args), "note the failed delivery on")
            return
        log.warning("alert not delivered", extra=extra)
        message = await self._store.outbox.by_provider_id(provider_id)
        if message is None or message.incident_number is None:
            return
        number = message.incident_number
        detail = (
            f"{message.kind} {message.channel} to {recipient or message.recipient}: "
            f"Twilio reports {status}"
        )
        try:
            await self._pipeline.act(
                lambda now: self._monitor.delivery_failed(number, now, detail), handover=applying
            )
        except NotLeader as exc:
            raise ServiceError(
                f"could not note the failed delivery here: {exc}", status=503
            ) from None
        except StepFailed:
            raise step_not_stored("note the failed delivery on") from None

    async def _note_reached(self, provider_id: str, status: str, recipient: str) -> None:
        message = await self._store.outbox.by_provider_id(provider_id)
        if message is None or message.incident_number is None:
            return
        entry = StoredEntry(
            incident_number=message.incident_number,
            at=self._clock.now(),
            kind="alert_delivered",
            detail=f"{message.kind} {message.channel} to {recipient or message.recipient}: "
            f"Twilio reports {status}",
        )
        try:
            async with self._store.transaction() as tx:
                await tx.timeline.add(entry)
        except (StorageError, SQLAlchemyError):
            raise step_not_stored("note the delivery on") from None

    # --- views ---------------------------------------------------------------------------------

    def _customer_name(self, customer: str) -> str:
        found = self._customers.get(customer)
        return found.name if found is not None and found.name else customer

    def _summary_of(self, incident: Incident) -> IncidentSummary:
        return IncidentSummary(
            number=incident.number,
            customer=incident.customer,
            customer_name=self._customer_name(incident.customer),
            title=incident.title,
            status=_incident_state(incident.status.value),
            priority=int(incident.priority),
            opened_at=incident.opened_at,
            acknowledged_at=incident.acknowledged_at,
            resolved_at=incident.resolved_at,
            resolved_by=None if incident.resolved_by is None else incident.resolved_by.value,
            breaches=tuple(b for b in _BREACHES if b in {n.value for n in incident.breaches}),
            **self._next_deadline(
                int(incident.priority),
                resolved=not incident.is_open,
                acknowledged=incident.acknowledged_at is not None,
                response_due=incident.response_due,
                update_due=incident.update_due,
                repair_due=incident.repair_due,
            ),
        )

    def _summary_of_record(self, record: IncidentRecord) -> IncidentSummary:
        state = str(record.state.get("status", record.status))
        resolved_by: Literal["auto", "person"] | None = None
        if record.resolved_by in ("auto", "person"):
            resolved_by = "auto" if record.resolved_by == "auto" else "person"
        return IncidentSummary(
            number=record.number,
            customer=record.customer,
            customer_name=self._customer_name(record.customer),
            title=record.title,
            status=_incident_state(state),
            priority=int(record.priority),
            opened_at=record.opened_at,
            acknowledged_at=record.acknowledged_at,
            resolved_at=record.resolved_at,
            resolved_by=resolved_by,
            breaches=tuple(b for b in _BREACHES if b in record.breaches),
            **self._next_deadline(
                int(record.priority),
                resolved=record.status == "resolved" or record.resolved_at is not None,
                acknowledged=record.acknowledged_at is not None,
                response_due=record.response_due,
                update_due=record.update_due,
                repair_due=record.repair_due,
            ),
        )

    def _next_deadline(
        self,
        priority: int,
        *,
        resolved: bool,
        acknowledged: bool,
        response_due: datetime | None,
        update_due: datetime | None,
        repair_due: datetime | None,
    ) -> dict[str, Any]:
        name, due = next_deadline(
            priority,
            self._clock.now(),
            resolved=resolved,
            acknowledged=acknowledged,
            response_due=response_due,
            update_due=update_due,
            repair_due=repair_due,
        )
        return {"next_deadline": name, "next_due": due}

    async def _window_view(
        self, window: MaintenanceRecord, now: datetime, *, history: bool = False
    ) -> MaintenanceView:
        revisions = await self._store.maintenance.revisions(window.id or 0) if history else []
        return MaintenanceView(
            id=window.id or 0,
            start=window.starts_at,
            end=window.ends_at,
            services=window.services or None,
            customers=window.customers or None,
            reason=window.reason,
            created_by=window.created_by,
            state=window_state(
                window.starts_at,
                window.ends_at,
                now,
                cancelled=window.cancelled,
                spans=window.spans,
            ),
            cancelled_by=window.cancelled_by,
            cancelled_at=window.cancelled_at,
            locations=window.locations or None,
            emergency=window.emergency,
            justification=window.justification,
            recurrence=window.recurrence,
            occurrences=window.occurrences,
            revision=window.revision,
            history=tuple(
                MaintenanceRevisionView(
                    r.revision,
                    r.action,
                    r.at,
                    r.actor,
                    r.reason,
                    None if r.before is None else dict(r.before),
                )
                for r in revisions
            ),
        )


def _recognition(
    level: Literal["customer", "location", "user"], customer: str, name: str, counts: list[int]
) -> RecognitionRow:
    calls, misses = counts
    rate = (calls - misses) / calls if calls else None
    return RecognitionRow(level, customer, name, rate, calls, misses)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _incident_state(value: str) -> IncidentState:
    if value == "acknowledged":
        return "acknowledged"
    return "resolved" if value == "resolved" else "open"


def _holding_words(entry: HeldEntry) -> str:
    """``Click2Dial at acme-ams, all users: 3 consecutive failed rounds ...``"""
    who = entry.user or "all users"
    return f"{service_name(entry.service.value)} at {entry.location}, {who}: {entry.reason}"


def _timeline_view(entry: StoredEntry) -> TimelineEntry:
    actor = None if entry.actor == SYSTEM_ACTOR else entry.actor
    return TimelineEntry(at=entry.at, kind=entry.kind, detail=entry.detail, actor=actor)
