"""``ctiwatch simulate``: the whole pipeline in virtual time (spec: simulate.md).

The real probes run against the built-in CloudCTI simulator over an in-memory transport; the
real classifier, incident engine, SLA timers, escalation and alert routing (the
:class:`~pipeline.monitor.Monitor` that ``ctiwatch run`` uses) act on what they report. The
event loop is a :class:`~ctiwatch.clock.VirtualTimeLoop`: whenever every task waits on a timer,
time jumps to the next one, so days run in seconds. Alerts go to a recorder instead of Twilio or
SMTP. Nothing here reads the wall clock or a salted hash, so a scenario always gives the same
output.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerting.model import MessagePart, OutgoingMessage
from classifier.observation import ProbeResult
from ctiwatch.clock import Clock, LoopClock, run_in_virtual_time
from ctiwatch.config import Config, ConfigError
from ctiwatch.mqtt.ingest import AgentTracker, Receiver
from ctiwatch.mqtt.schema import encode_results
from ctiwatch.mqtt.topics import Topics
from ctiwatch.scenario import ActionSpec, Scenario, check_references
from ctiwatch.settings import (
    context_from_config,
    monitor_settings,
    policy_from_config,
    targets_from_config,
)
from ctiwatch.simulator.core import SimulatorCore, users_from_topology
from ctiwatch.simulator.faults import FaultPlan
from ctiwatch.simulator.transport import SimulatorTransport
from ctiwatch.timefmt import iso_local
from incidents.maintenance import (
    InsideSupportHours,
    MaintenanceWindow,
    check_outside_support_hours,
)
from incidents.model import Incident, IncidentError
from pipeline.monitor import Monitor, Outcome
from probes.base import sequential_ids
from probes.scheduler import Scheduler
from sla.calendar import SupportCalendar


class _VirtualClock(LoopClock):
    """:class:`LoopClock` bound to its loop, remembering the last instant it read.

    Every probe reads the clock a few times and a round's probes all run at one virtual
    instant, so most reads find the time unchanged and reuse the datetime already built.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._loop: asyncio.AbstractEventLoop = loop
        self._last = math.nan
        self._last_now = datetime.fromtimestamp(0, UTC)

    def now(self) -> datetime:
        time = self._loop.time()
        if time != self._last:
            self._last = time
            self._last_now = datetime.fromtimestamp(round(time, 6), UTC)
        return self._last_now


@dataclass(slots=True)
class AlertRecord:
    at: datetime
    channel: str
    to: str
    incident: int | None
    kind: str
    # A combined message (sla.md "Paging"): every alert it carries, the most urgent first;
    # empty for a message that carries one.
    parts: tuple[MessagePart, ...] = ()
    held_since: datetime | None = None  # held outside support hours since then


@dataclass(slots=True)
class SimulationResult:
    incidents: list[Incident]
    alerts: list[AlertRecord]
    results: int = 0
    notes: list[str] = field(default_factory=list)
    # The zone times are shown in: the SLA calendar's (Europe/Amsterdam by default), the same
    # that ``ctiwatch sla deadlines`` prints in.
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Amsterdam"))
    # Scope entries name their source only when the scenario has agents: the outputs of
    # scenarios without agents stay as they were before sources were kept apart.
    with_sources: bool = False


def scenario_config(config: Config, scenario: Scenario) -> Config:
    """The configuration the scenario runs with: its topology and interval, if it sets them."""
    topology = config.topology
    if scenario.customers is not None:
        topology = topology.model_copy(update={"customers": scenario.customers})
    probes = config.probes
    if scenario.probe_interval is not None:
        probes = probes.model_copy(update={"interval": scenario.probe_interval})
    return config.model_copy(update={"topology": topology, "probes": probes})


def fault_plan(scenario: Scenario) -> FaultPlan:
    return FaultPlan(
        spec.fault(scenario.start.astimezone(UTC), f"scenario-{index + 1}")
        for index, spec in enumerate(scenario.faults)
    )


def maintenance_windows(scenario: Scenario) -> list[MaintenanceWindow]:
    return [
        MaintenanceWindow(
            start=spec.from_.astimezone(UTC),
            end=spec.to.astimezone(UTC),
            services=frozenset(spec.services) if spec.services is not None else None,
            customers=frozenset(spec.customers) if spec.customers is not None else None,
            locations=frozenset(spec.locations) if spec.locations is not None else None,
            reason=spec.reason,
            emergency=spec.emergency,
            justification=spec.justification,
        )
        for spec in scenario.maintenance
    ]


def maintenance_errors(scenario: Scenario, calendar: SupportCalendar) -> list[str]:
    """Scenario windows are announced windows: each lies outside support hours on the
    configured calendar unless it is an emergency (sla.md, Maintenance)."""
    errors: list[str] = []
    fields = {"start": "from", "end": "to"}
    for index, spec in enumerate(scenario.maintenance):
        if spec.emergency:
            continue
        try:
            check_outside_support_hours(calendar, spec.from_, spec.to)
        except InsideSupportHours as exc:
            field = fields.get(exc.field, exc.field)
            errors.append(
                f"maintenance[{index}].{field}: {exc.message} (an emergency needs "
                "emergency: true and a justification)"
            )
    return errors


class _Runner:
    def __init__(self, config: Config, scenario: Scenario, clock: Clock) -> None:
        self.config = config
        self.scenario = scenario
        self.clock = clock
        self.monitor = Monitor(
            monitor_settings(config, oncall=scenario.oncall),
            policy_from_config(config.sla),
            maintenance=maintenance_windows(scenario),
        )
        self.alerts: list[AlertRecord] = []
        self.results = 0
        self.notes: list[str] = []
        self._wake = asyncio.Event()

    def _record(self, outcome: Outcome) -> None:
        now = self.clock.now()
        for message in outcome.messages:
            self.alerts.append(_alert(message, now))
        if outcome.messages or outcome.events:
            self._wake.set()

    def on_results(self, batch: list[ProbeResult]) -> None:
        self.results += len(batch)
        self._record(self.monitor.observe(batch, self.clock.now()))

    def agent_sink(self, agent: str, receiver: Receiver) -> Callable[[list[ProbeResult]], None]:
        """Where an agent's rounds go: encoded and received as its MQTT batches would be
        (the ingestion's own validation and deduplication), then into the monitor."""
        topic = Topics(self.config.mqtt.topic_prefix).results(agent)

        def sink(batch: list[ProbeResult]) -> None:
            now = self.clock.now()
            intake = receiver.receive(topic, encode_results(agent, now, batch), now)
            if intake.results:
                self.on_results(intake.results)

        return sink

    def agent_schedulers(self, core: SimulatorCore) -> list[Scheduler]:
        """One scheduler per scenario agent, probing its locations' users over its own
        transport (the simulator answers per requester), with its own result ids."""
        config, scenario = self.config, self.scenario
        if not scenario.agents:
            return []
        receiver = Receiver(
            config.topology,
            Topics(config.mqtt.topic_prefix),
            AgentTracker(config.probes.interval),
        )
        targets = targets_from_config(config, checks=False)
        schedulers = []
        for agent in scenario.agents:
            wanted = set(agent.locations)
            transport = SimulatorTransport(
                core, self.clock, random.Random(f"{scenario.seed}:{agent.id}"), source=agent.id
            )
            schedulers.append(
                Scheduler(
                    [t for t in targets if t.key.location in wanted],
                    transport,
                    context_from_config(config.probes, self.clock, sequential_ids(f"{agent.id}:")),
                    interval=config.probes.interval,
                    on_results=self.agent_sink(agent.id, receiver),
                    concurrency=max(1, len(wanted) * 1000),
                    spread=False,
                    deadline=math.inf,
                )
            )
        return schedulers

    async def timers(self) -> None:
        """Sleep exactly until the monitor's next due instant, or until something changed."""
        while True:
            due = self.monitor.next_due()
            now = self.clock.now()
            if due is not None and due <= now:
                self._record(self.monitor.tick(now))
                if self.monitor.next_due() == due:  # nothing more can happen at this instant
                    await asyncio.sleep(0)
                continue
            self._wake.clear()
            timeout = None if due is None else (due - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def actions(self, actions: Iterable[ActionSpec]) -> None:
        for action in sorted(actions, key=lambda a: a.at):
            await self.clock.sleep_until(action.at.astimezone(UTC))
            now = self.clock.now()
            monitor = self.monitor
            try:
                if action.kind == "acknowledge":
                    outcome = monitor.acknowledge(action.incident, now, action.by)
                elif action.kind == "update":
                    text = action.text or "update from the scenario"
                    outcome = monitor.update(action.incident, now, action.by, text)
                elif action.kind == "resolve":
                    # A scenario's resolve is a confirmed one (simulate.md): forced.
                    reason = action.text or "scenario action"
                    outcome = monitor.resolve(action.incident, now, action.by, reason, force=True)
                else:
                    outcome = monitor.reopen(action.incident, now, action.by, action.text or "")
            except IncidentError as exc:
                when = iso_local(action.at, ZoneInfo(self.config.sla.timezone))
                self.notes.append(f"{when} {action.kind} {action.incident}: {exc}")
                continue
            self._record(outcome)

    async def run(self) -> SimulationResult:
        scenario, config = self.scenario, self.config
        customers = config.topology.customers
        core = SimulatorCore(config.probes.api_token, users_from_topology(customers))
        core.faults = fault_plan(scenario)
        transport = SimulatorTransport(core, self.clock, random.Random(scenario.seed))
        ctx = context_from_config(config.probes, self.clock, sequential_ids())
        scheduler = Scheduler(
            targets_from_config(config, checks=False),
            transport,
            ctx,
            interval=config.probes.interval,
            on_results=self.on_results,
            concurrency=max(1, len(customers) * 1000),
            spread=False,
            # In virtual time the per-attempt timeouts and bounded retries already bound a
            # round; a guard would only cost a timer per round.
            deadline=math.inf,
        )
        start, end = scenario.start.astimezone(UTC), scenario.end.astimezone(UTC)
        tasks = [
            asyncio.create_task(scheduler.run(start=start, until=end)),
            asyncio.create_task(self.timers()),
            asyncio.create_task(self.actions(scenario.actions)),
        ]
        # Agents' rounds start half an interval after the central prober's (simulate.md).
        agents_start = start + config.probes.interval / 2
        for agent_scheduler in self.agent_schedulers(core):
            tasks.append(asyncio.create_task(agent_scheduler.run(start=agents_start, until=end)))
        ending = asyncio.create_task(self.clock.sleep_until(end))
        try:
            waiting = {ending, *tasks}
            while ending in waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if any(not task.cancelled() and task.exception() for task in done):
                    break
        finally:
            for task in (ending, *tasks):
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:  # a bug in the pipeline must not pass as a quiet scenario
            if isinstance(outcome, Exception):
                raise outcome
        return SimulationResult(
            self.monitor.engine.incidents(),
            self.alerts,
            self.results,
            self.notes,
            ZoneInfo(self.config.sla.timezone),
            with_sources=bool(scenario.agents),
        )


def _alert(message: OutgoingMessage, now: datetime) -> AlertRecord:
    return AlertRecord(
        at=now,
        channel=message.channel,
        to=message.to,
        incident=message.incident,
        kind=message.kind,
        parts=message.parts if len(message.parts) > 1 else (),
        held_since=message.held_since,
    )


def run_simulation(config: Config, scenario: Scenario) -> SimulationResult:
    """Run ``scenario`` to its end in virtual time and return what happened."""
    config = scenario_config(config, scenario)
    if not config.topology.customers:
        raise ConfigError(["customers: the scenario and the configuration name no customers"])
    errors = check_references(scenario, list(config.topology.customers))
    errors += maintenance_errors(scenario, policy_from_config(config.sla).calendar)
    if errors:
        raise ConfigError(errors)

    async def main() -> SimulationResult:
        return await _Runner(config, scenario, _VirtualClock(asyncio.get_running_loop())).run()

    with simulation_gc():
        return run_in_virtual_time(scenario.start, main)


# --- output ------------------------------------------------------------------------------------

_AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def incident_json(
    incident: Incident, zone: ZoneInfo = _AMSTERDAM, with_sources: bool = False
) -> dict[str, Any]:
    def _local(at: datetime | None) -> str | None:
        return iso_local(at, zone)

    scope = sorted(
        incident.scope.values(),
        key=lambda e: (e.service.value, e.location, e.user or "", e.joined_at),
    )
    return {
        "number": incident.number,
        "customer": incident.customer,
        "priority": int(incident.priority),
        "automatic": incident.automatic,
        "opened_at": _local(incident.opened_at),
        "acknowledged_at": _local(incident.acknowledged_at),
        "resolved_at": _local(incident.resolved_at),
        "resolved_by": None if incident.resolved_by is None else incident.resolved_by.value,
        "response_due": _local(incident.response_due),
        "update_due": _local(incident.update_due),
        "repair_due": _local(incident.repair_due),
        "breaches": [name.value for name in incident.breaches],
        "scope": [
            {
                "service": entry.service.value,
                "location": entry.location,
                "user": entry.user,
                "priority": int(entry.priority),
                "condition": entry.kind.value,
                "joined_at": _local(entry.joined_at),
                "cleared_at": _local(entry.cleared_at),
            }
            | ({"source": entry.source} if with_sources else {})
            for entry in scope
        ],
        "timeline": [
            {"at": _local(entry.at), "kind": entry.kind, "detail": entry.detail}
            | ({"by": entry.actor} if entry.actor else {})
            for entry in incident.timeline
        ],
    }


def result_json(result: SimulationResult) -> dict[str, Any]:
    zone = result.zone
    incidents = sorted(result.incidents, key=lambda i: i.number)
    return {
        "incidents": [incident_json(incident, zone, result.with_sources) for incident in incidents],
        "alerts": [alert_json(alert, zone) for alert in result.alerts],
    }


def alert_json(alert: AlertRecord, zone: ZoneInfo = _AMSTERDAM) -> dict[str, Any]:
    """One sent message. Added to the spec's fields (only where they apply, so other outputs
    stay as they were): ``held_since`` on a message held outside support hours, ``also`` (the
    kinds of the other parts, most urgent first) and ``parts`` (every part: incident, kind and
    the instant it was raised) on a combined one."""
    item: dict[str, Any] = {
        "at": iso_local(alert.at, zone),
        "channel": alert.channel,
        "to": alert.to,
        "incident": alert.incident,
        "kind": alert.kind,
    }
    if alert.held_since is not None:
        item["held_since"] = iso_local(alert.held_since, zone)
    if alert.parts:
        item["also"] = [part.kind for part in alert.parts[1:]]
        item["parts"] = [
            {"incident": part.incident, "kind": part.kind, "at": iso_local(part.at, zone)}
            for part in alert.parts
        ]
    return item


@contextlib.contextmanager
def simulation_gc() -> Iterator[None]:
    """Garbage-collector settings for a simulation run, restored afterwards.

    The pipeline allocates many short-lived objects (results, answers, timer handles) and few
    cycles; the objects that live long are the imported modules and the run's own state. So:
    move everything that exists now out of the collector's sight (``gc.freeze``) and collect
    the young generation less often. Memory stays bounded: a full collection still runs.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
