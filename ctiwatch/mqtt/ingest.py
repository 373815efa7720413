"""Central ingestion: agents' results and the platform's call events, into the results pipeline.

Several central workers can run this side by side: results and calls are read through an MQTT
shared subscription (``$share/<group>/…``), so each message goes to one worker. Every message
is validated; a bad one is logged with its reason and counted, never raised. Result ids are
deduplicated (a bounded filter of digests here, the database's unique key behind it), and what
is left goes to the same sink as the local probes' results: ``async (list[ProbeResult]) -> None``.

Every input is judged alone. A message that cannot be read is rejected with one log line and
a counter, and nothing it contains reaches the sink. A message that names another agent than
its topic (``agent_mismatch``: an agent publishing under another's name, or a broker ACL that
lets it) is also parked as a dead letter (``park_messages``) with its topic, reason and payload,
for a person to look at. A batch the sink refuses is retried with
backoff while the fault is the database's (``transient``: unreachable, locked), and otherwise
split in halves until the results it refuses are found: those are parked (``park``, the
dead-letter table) with the reason and the others stored, so one bad result never stops the
ones after it.

Agents are tracked from their status messages (``online``, heartbeats, the ``offline`` last
will) and their results: an agent that reports nothing for ``stale_after`` probe intervals is
``stale``. Changes go to ``on_agent_change`` so the application can show them and alert on-call
about an internal problem (never a customer incident).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

import aiomqtt
from aiomqtt.client import ProtocolVersion

from classifier.observation import ProbeResult
from ctiwatch.clock import Clock
from ctiwatch.config import MqttConfig, TopologyConfig
from ctiwatch.mqtt.backoff import Backoff
from ctiwatch.mqtt.connect import client_options, explain
from ctiwatch.mqtt.dedup import RecentIds
from ctiwatch.mqtt.schema import (
    DEFAULT_WINDOW,
    AgentStatus,
    PayloadError,
    TopologyIndex,
    Window,
    decode_call,
    decode_results,
    decode_status,
    encode_result,
)
from ctiwatch.mqtt.topics import TopicKind, Topics

log = logging.getLogger("ctiwatch.mqtt.ingest")

Sink = Callable[[list[ProbeResult]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Refused:
    """A result the sink refused on its own, to be parked."""

    result: ProbeResult
    reason: str

    @property
    def payload(self) -> str:
        """The result as its batch carried it (JSON; control characters escaped)."""
        return encode_result(self.result).decode()


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """A message rejected for a reason a person must look at, to be parked whole."""

    topic: str
    reason: str
    payload: str  # as received (bytes that are not UTF-8 replaced)


# Rejections parked as dead letters, not only counted and logged.
PARKED_REASONS = frozenset({"agent_mismatch"})


Park = Callable[[list[Refused]], Awaitable[None]]
ParkMessages = Callable[[list[DeadMessage]], Awaitable[None]]
Transient = Callable[[BaseException], bool]
TOPIC_SHOWN = 200  # characters of a topic that go into a log line or an error


def _never_transient(exc: BaseException) -> bool:
    return False


# --- agents --------------------------------------------------------------------------------------


class AgentHealth(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # said so (graceful stop) or its last will did (connection lost)
    STALE = "stale"  # connected as far as the broker knows, but reports nothing


@dataclass(frozen=True, slots=True)
class AgentState:
    name: str
    health: AgentHealth
    last_seen: datetime  # last result or status message received from it
    since: datetime  # when ``health`` became what it is
    reason: str = ""
    # The time the agent's own status message gave (its last will: when it connected), for a
    # status change; ``None`` when ctiwatch judged it (results arrived, or it went stale).
    # It names the transition (alerts' idempotency keys), it is not part of the state.
    reported_at: datetime | None = field(default=None, compare=False)


AgentListener = Callable[[AgentState], Awaitable[None]]


class AgentTracker:
    """What is known about each agent; pure: every method takes ``now``."""

    def __init__(self, interval: timedelta, stale_after: int = 3) -> None:
        if stale_after < 1:
            raise ValueError("stale_after must be at least 1 interval")
        self.stale_delay = interval * stale_after
        self._agents: dict[str, AgentState] = {}

    def agents(self) -> list[AgentState]:
        return sorted(self._agents.values(), key=lambda a: a.name)

    def get(self, name: str) -> AgentState | None:
        return self._agents.get(name)

    def restore(self, state: AgentState) -> None:
        """Start from what was known before a restart (no change is reported for it)."""
        self._agents[state.name] = state

    def saw(self, name: str, now: datetime) -> AgentState | None:
        """Results from ``name`` arrived; the new state if its health changed."""
        return self._set(name, AgentHealth.ONLINE, now, "")

    def reported(self, status: AgentStatus, now: datetime) -> AgentState | None:
        """A status message from ``name`` (or its last will) arrived."""
        health = AgentHealth.ONLINE if status.online else AgentHealth.OFFLINE
        return self._set(status.agent, health, now, status.reason, status.at)

    def check(self, now: datetime) -> list[AgentState]:
        """Agents that became stale by ``now``."""
        changed = []
        for state in list(self._agents.values()):
            if state.health is AgentHealth.ONLINE and now - state.last_seen >= self.stale_delay:
                stale = replace(
                    state,
                    health=AgentHealth.STALE,
                    since=now,
                    reason=f"no report for {_human(now - state.last_seen)}",
                )
                self._agents[state.name] = stale
                changed.append(stale)
        return changed

    def next_check(self) -> datetime | None:
        """The earliest instant an online agent can become stale."""
        online = [a.last_seen for a in self._agents.values() if a.health is AgentHealth.ONLINE]
        return min(online) + self.stale_delay if online else None

    def _set(
        self,
        name: str,
        health: AgentHealth,
        now: datetime,
        reason: str,
        reported_at: datetime | None = None,
    ) -> AgentState | None:
        before = self._agents.get(name)
        if before is not None and before.health is health:
            if health is not AgentHealth.OFFLINE:  # a repeated "offline" is not a sign of life
                self._agents[name] = replace(before, last_seen=now)
            return None
        state = AgentState(name, health, now, now, reason, reported_at)
        self._agents[name] = state
        return state


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# --- validation, dedup and counting, without the network ----------------------------------------


@dataclass
class IngestCounts:
    messages: int = 0
    accepted: int = 0  # results passed on to the sink
    duplicates: int = 0  # results dropped because their id was seen before
    rejected: Counter[str] = field(default_factory=Counter)  # by reason (messages or results)
    parked: int = 0  # accepted results the sink refused and messages parked as dead letters

    def snapshot(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "parked": self.parked,
        }


@dataclass(frozen=True, slots=True)
class Intake:
    """What one message gave: results for the sink, and agents whose health changed."""

    results: list[ProbeResult]
    agent_changes: list[AgentState]
    dead: list[DeadMessage] = field(default_factory=list)  # to park (PARKED_REASONS)


class Receiver:
    """Decodes, validates, deduplicates and counts messages; no I/O (``now`` is an argument)."""

    def __init__(
        self,
        topology: TopologyConfig,
        topics: Topics,
        tracker: AgentTracker,
        *,
        dedup_capacity: int = 200_000,
        window: Window = DEFAULT_WINDOW,
    ) -> None:
        self._topology = TopologyIndex(topology)
        self._topics = topics
        self._window = window
        self.tracker = tracker
        self._recent = RecentIds(dedup_capacity)
        self.counts = IngestCounts()
        # Per agent: results accepted from it, and the locations they were about.
        self.results_by_agent: Counter[str] = Counter()
        self.locations_by_agent: dict[str, set[str]] = {}

    def receive(self, topic: str, payload: bytes, now: datetime) -> Intake:
        """What ``payload`` on ``topic`` gives; never raises (a bad message is counted)."""
        self.counts.messages += 1
        try:
            return self._receive(topic, payload, now)
        except PayloadError as exc:
            self._reject(topic, exc)
            if exc.reason in PARKED_REASONS:
                text = payload.decode("utf-8", errors="replace")
                return Intake([], [], [DeadMessage(topic, f"{exc.reason}: {exc.message}", text)])
        except Exception as exc:  # a bug of ours, not the sender's: still only this message
            self.counts.rejected["internal_error"] += 1
            log.exception(
                "mqtt message could not be handled",
                extra={"topic": _shown(topic), "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
        return Intake([], [])

    def _receive(self, topic: str, payload: bytes, now: datetime) -> Intake:
        parsed = self._topics.parse(topic)
        window = self._window
        if parsed is None:
            raise PayloadError("unknown_topic", f"topic {_shown(topic)!r} is not one of ctiwatch's")
        if parsed.kind is TopicKind.RESULTS:
            batch = decode_results(
                payload, self._topology, now=now, window=window, topic_agent=parsed.name
            )
            for problem in batch.rejected:
                self._reject(topic, problem)
            change = self.tracker.saw(parsed.name, now)
            fresh = self._fresh(batch.results)
            self.results_by_agent[parsed.name] += len(fresh)
            places = self.locations_by_agent.setdefault(parsed.name, set())
            places.update(r.target.location for r in fresh)
            return Intake(fresh, [change] if change else [])
        if parsed.kind is TopicKind.CALLS:
            call = decode_call(payload, parsed.name, self._topology, now=now, window=window)
            return Intake(self._fresh([call]), [])
        status = decode_status(payload, now=now, window=window, topic_agent=parsed.name)
        change = self.tracker.reported(status, now)
        return Intake([], [change] if change else [])

    def _fresh(self, results: list[ProbeResult]) -> list[ProbeResult]:
        fresh = [r for r in results if self._recent.first_time(r.result_id)]
        self.counts.duplicates += len(results) - len(fresh)
        self.counts.accepted += len(fresh)
        return fresh

    def _reject(self, topic: str, exc: PayloadError) -> None:
        self.counts.rejected[exc.reason] += 1
        log.warning(
            "mqtt message rejected",
            extra={"topic": _shown(topic), "reason": exc.reason, "detail": exc.message[:1000]},
        )


def _shown(topic: str) -> str:
    return topic if len(topic) <= TOPIC_SHOWN else topic[: TOPIC_SHOWN - 3] + "..."


# --- the network side ---------------------------------------------------------------------------


class Ingestion:
    """``await ingestion.run()`` until :meth:`stop`; reconnects with backoff on its own."""

    def __init__(
        self,
        mqtt: MqttConfig,
        topology: TopologyConfig,
        sink: Sink,
        *,
        clock: Clock,
        agent_interval: timedelta = timedelta(seconds=60),
        stale_after: int = 3,
        on_agent_change: AgentListener | None = None,
        identifier: str | None = None,
        dedup_capacity: int = 200_000,
        max_sink_batch: int = 5_000,
        backoff: Backoff | None = None,
        park: Park | None = None,
        transient: Transient = _never_transient,
        park_messages: ParkMessages | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._park_messages = park_messages
        self._sink = sink
        self._clock = clock
        self._on_agent_change = on_agent_change
        self._identifier = identifier or f"ctiwatch-ingest-{uuid.uuid4().hex[:12]}"
        self._max_sink_batch = max_sink_batch
        self._backoff = backoff or Backoff()
        self._park = park
        self._transient = transient
        self.topics = Topics(mqtt.topic_prefix)
        self._broker = f"{mqtt.host}:{mqtt.port}"
        self.receiver = Receiver(
            topology,
            self.topics,
            AgentTracker(agent_interval, stale_after),
            dedup_capacity=dedup_capacity,
            window=Window(mqtt.max_age, mqtt.max_ahead),
        )
        # Set while subscribed; cleared while the broker is away. For health pages and tests.
        self.subscribed = asyncio.Event()
        # Why the last connection attempt failed, while the broker is away; ``None`` otherwise.
        self.broker_problem: str | None = None
        self._queue: asyncio.Queue[list[ProbeResult] | None] = asyncio.Queue(maxsize=256)
        self._stopping = asyncio.Event()

    @property
    def counts(self) -> IngestCounts:
        return self.receiver.counts

    @property
    def broker(self) -> str:
        """``host:port`` of the broker."""
        return self._broker

    def agents(self) -> list[AgentState]:
        return self.receiver.tracker.agents()

    def restore_agent(
        self, state: AgentState, results: int = 0, locations: Iterable[str] = ()
    ) -> None:
        """Before :meth:`run`: an agent as stored before a restart, so its retained status is
        no news and its results count on from ``results``."""
        self.receiver.tracker.restore(state)
        self.receiver.results_by_agent[state.name] = results
        self.receiver.locations_by_agent[state.name] = set(locations)

    def results_from(self, agent: str) -> int:
        """Results accepted from ``agent`` since this process started."""
        return self.receiver.results_by_agent[agent]

    def locations_of(self, agent: str) -> tuple[str, ...]:
        """The locations ``agent``'s accepted results were about, sorted."""
        return tuple(sorted(self.receiver.locations_by_agent.get(agent, ())))

    def stop(self) -> None:
        """Stop receiving; :meth:`run` returns once what was received has reached the sink."""
        self._stopping.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            receiving = tasks.create_task(self._receive_loop())
            watching = tasks.create_task(self._watch_agents())
            writing = tasks.create_task(self._write_loop())
            await self._stopping.wait()
            receiving.cancel()
            watching.cancel()
            await asyncio.wait([receiving])
            await self._queue.put(None)  # the writer drains what is queued, then ends
            await writing

    # --- receiving ---------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            problem, refused = "connection closed", False
            try:
                async with self._client() as client:
                    for topic in self.topics.subscriptions(self._mqtt.shared_group):
                        await self._subscribe(client, topic)
                    self.subscribed.set()
                    self._backoff.reset()
                    self.broker_problem = None
                    log.info(
                        "mqtt ingestion subscribed",
                        extra={"broker": self._broker, "client": self._identifier},
                    )
                    async for message in client.messages:
                        await self._handle(str(message.topic), _as_bytes(message.payload))
            except aiomqtt.MqttError as exc:
                explained = explain(exc, self._mqtt, self._mqtt.username)
                problem, refused = explained.text, explained.refused
            finally:
                self.subscribed.clear()
            delay = self._backoff.next()
            # One warning when the broker goes away (an error when it refuses us: a person must
            # fix the login or the certificate); the retries after it only at debug level.
            first = self.broker_problem is None
            self.broker_problem = problem
            if refused:
                what, level = (
                    "mqtt broker refused ingestion; retrying with backoff",
                    logging.ERROR,
                )
            else:
                what, level = "mqtt broker unreachable; retrying with backoff", logging.WARNING
            log.log(
                level if first else logging.DEBUG,
                what if first else "mqtt retry failed",
                extra={"broker": self._broker, "error": problem, "retry_in_s": round(delay, 2)},
            )
            await self._clock.sleep(delay)

    async def _subscribe(self, client: aiomqtt.Client, topic: str) -> None:
        """Subscribe; a subscription the broker refuses (its ACL) is an error, not silence."""
        granted = await client.subscribe(topic, qos=1)
        codes = granted if isinstance(granted, list | tuple) else [granted]
        refused = [code for code in codes if getattr(code, "is_failure", False)]
        if refused:
            raise aiomqtt.MqttError(
                f"the broker refused the subscription to {_shown(topic)} ({refused[0]}): "
                f"its ACL must let user {self._mqtt.username!r} read it"
            )

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self._mqtt.host,
            self._mqtt.port,
            **client_options(self._mqtt, username=self._mqtt.username),
            identifier=self._identifier,
            protocol=ProtocolVersion.V5,
            keepalive=30,
        )

    async def _handle(self, topic: str, payload: bytes) -> None:
        intake = self.receiver.receive(topic, payload, self._clock.now())
        if intake.results:
            await self._queue.put(intake.results)
        if intake.dead and self._park_messages is not None:
            try:
                await self._park_messages(intake.dead)
                self.counts.parked += len(intake.dead)
            except Exception as exc:  # counted and logged already; the database is away
                log.warning(
                    "a rejected mqtt message was not parked",
                    extra={"topic": _shown(topic), "error": _reason(exc)[:300]},
                )
        await self._notify(intake.agent_changes)

    async def _notify(self, changes: list[AgentState]) -> None:
        for state in changes:
            log.info(
                "agent health changed",
                extra={"agent": state.name, "health": state.health.value, "reason": state.reason},
            )
            if self._on_agent_change is None:
                continue
            try:
                await self._on_agent_change(state)
            except Exception:
                log.exception("on_agent_change failed", extra={"agent": state.name})

    async def _watch_agents(self) -> None:
        tracker = self.receiver.tracker
        while True:
            await self._notify(tracker.check(self._clock.now()))
            due = tracker.next_check()
            wait = tracker.stale_delay.total_seconds()
            if due is not None:
                wait = min(wait, (due - self._clock.now()).total_seconds())
            await self._clock.sleep(max(wait, 0.001))

    # --- writing -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        done = False
        while not done:
            first = await self._queue.get()
            if first is None:
                return
            batch = list(first)
            while len(batch) < self._max_sink_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    done = True
                    break
                batch.extend(more)
            await self.deliver(batch)

    async def deliver(self, batch: list[ProbeResult]) -> None:
        """Hand ``batch`` to the sink. A fault of the database is retried with backoff (accepted
        results are never dropped); a batch the sink refuses is split until the results it
        refuses are found, and those are parked."""
        backoff = Backoff(initial=0.2, maximum=30.0)
        pending = [batch]
        while pending:
            part = pending.pop()
            try:
                await self._sink(part)
                backoff.reset()
                continue
            except Exception as exc:
                if self._transient(exc):
                    pending.append(part)
                    await self._wait_out(backoff, part, exc)
                elif len(part) > 1:
                    half = len(part) // 2
                    pending += [part[half:], part[:half]]  # the first half first
                else:
                    await self._park_one(Refused(part[0], _reason(exc)), backoff)

    async def _park_one(self, refused: Refused, backoff: Backoff) -> None:
        log.error(
            "result refused by the store; parked as a dead letter",
            extra={"result_id": refused.result.result_id[:128], "error": refused.reason[:300]},
        )
        while self._park is not None:
            try:
                await self._park([refused])
                break
            except Exception as exc:  # the database is away: keep it until it is back
                await self._wait_out(backoff, [refused.result], exc)
        self.counts.parked += 1

    async def _wait_out(self, backoff: Backoff, part: list[ProbeResult], exc: Exception) -> None:
        delay = backoff.next()
        log.error(
            "storing results failed; retrying",
            extra={
                "results": len(part),
                "error": _reason(exc)[:300],
                "retry_in_s": round(delay, 2),
            },
        )
        await self._clock.sleep(delay)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
