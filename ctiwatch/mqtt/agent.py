"""A remote probe agent: probes some locations and publishes the results over MQTT.

Every result is first written to the on-disk buffer (:mod:`ctiwatch.mqtt.buffer`); the
publisher sends the oldest results in batches (``batch_size`` results, or whatever is there
after ``batch_interval``) to ``<prefix>/results/<agent>`` with QoS 1, and deletes them only
after the broker's PUBACK. While the broker is away results pile up on disk and are replayed in
order when it comes back.

The agent speaks MQTT 5 so that the PUBACK says whether anyone received the message: "no
matching subscribers" (no central worker subscribed, e.g. right after a broker restart) keeps
the results buffered and tries again later instead of losing them.

Status: ``online`` (retained) on every connect and every probe interval (a heartbeat the
central side uses to tell a live agent from a stale one), ``offline`` (retained) on a clean
stop, and ``offline`` as the last will when the connection is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import aiomqtt
from aiomqtt.client import ProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from classifier.observation import ProbeResult
from ctiwatch.clock import Clock, wait_for_clock
from ctiwatch.config import AgentConfig, Config, ConfigError, MqttConfig
from ctiwatch.mqtt.backoff import Backoff
from ctiwatch.mqtt.buffer import Buffered, ResultBuffer
from ctiwatch.mqtt.connect import client_options, explain
from ctiwatch.mqtt.schema import encode_batch, encode_result, encode_status
from ctiwatch.mqtt.topics import Topics

log = logging.getLogger("ctiwatch.mqtt.agent")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_NO_MATCHING_SUBSCRIBERS = 0x10
_NOT_AUTHORIZED = 0x87


class NotDelivered(Exception):
    """The broker acknowledged the message but did not pass it on; the results stay buffered."""


class _AckClient(aiomqtt.Client):
    """aiomqtt's client, keeping the reason code of the last PUBACK.

    aiomqtt's ``publish`` waits for the PUBACK but drops its reason code; the publisher needs
    it (MQTT 5 "no matching subscribers"). Publishes are sequential, so "the last" is "ours".
    """

    puback: ReasonCode | None = None

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        self.puback = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)


class AgentPublisher:
    """Publishes what :meth:`submit` buffers; ``await run()`` until :meth:`stop`."""

    def __init__(
        self,
        mqtt: MqttConfig,
        name: str,
        buffer: ResultBuffer,
        *,
        clock: Clock,
        batch_size: int = 500,
        batch_interval: float | timedelta = 1.0,
        heartbeat_interval: float | timedelta = 60.0,
        publish_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self._mqtt = mqtt
        self._buffer = buffer
        self._clock = clock
        self._batch_size = batch_size
        self._batch_interval = _delta(batch_interval)
        self._heartbeat = _delta(heartbeat_interval)
        self._publish_timeout = publish_timeout
        self._backoff = backoff or Backoff()
        topics = Topics(mqtt.topic_prefix)
        self._results_topic = topics.results(name)
        self._status_topic = topics.agent_status(name)
        self._broker = f"{mqtt.host}:{mqtt.port}"
        # An agent logs in as its own name: the broker's ACL lets a user publish under its own
        # name only (see docker/mosquitto.acl).
        self.username = agent_username(mqtt, name)
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._waiting_since: datetime | None = None
        # Set while connected to the broker (health pages and tests).
        self.connected = asyncio.Event()
        self.published = 0  # results acknowledged by the broker
        self.messages = 0  # result messages acknowledged by the broker
        self.undelivered = 0  # messages the broker passed on to nobody (kept, sent again)
        self.refusals = 0  # connections the broker refused (login, certificate)
        # Set after every publish attempt of results, whatever its outcome; whoever waits on
        # the counters above clears it first.
        self.progress = asyncio.Event()

    @property
    def buffered(self) -> int:
        """Results waiting on disk."""
        return len(self._buffer)

    async def submit(self, results: Sequence[ProbeResult]) -> None:
        """Keep ``results`` on disk for publishing (the probe scheduler's sink)."""
        if results:
            await self._buffer.append([encode_result(r) for r in results])
            self._wakeup.set()

    def stop(self) -> None:
        """Publish what is buffered if connected, say ``offline`` and return from :meth:`run`."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            problem, refused = "connection closed", False
            try:
                async with self._client() as client:
                    await self._say(client, online=True)
                    self.connected.set()
                    self._backoff.reset()
                    log.info(
                        "agent connected",
                        extra={
                            "agent": self.name,
                            "broker": self._broker,
                            "buffered": self.buffered,
                        },
                    )
                    await self._publish_loop(client)
                    await self._say(client, online=False, reason="stopped")
                    return
            except aiomqtt.MqttError as exc:
                explained = explain(exc, self._mqtt, self.username)
                problem, refused = explained.text, explained.refused
            finally:
                self.connected.clear()
            delay = self._backoff.next()
            self.refusals += refused
            log.log(
                logging.ERROR if refused else logging.WARNING,
                "broker refused the agent, results stay buffered"
                if refused
                else "broker unavailable, results stay buffered",
                extra={
                    "agent": self.name,
                    "broker": self._broker,
                    "error": problem,
                    "buffered": self.buffered,
                    "retry_in_s": round(delay, 2),
                },
            )
            await self._pause(delay)

    def _client(self) -> _AckClient:
        will = aiomqtt.Will(
            self._status_topic,
            encode_status(self.name, False, self._clock.now(), "connection lost"),
            qos=1,
            retain=True,
        )
        return _AckClient(
            self._mqtt.host,
            self._mqtt.port,
            **client_options(self._mqtt, username=self.username),
            identifier=f"ctiwatch-agent-{self.name}",
            protocol=ProtocolVersion.V5,
            will=will,
            keepalive=30,
            timeout=self._publish_timeout,
        )

    async def _say(self, client: _AckClient, *, online: bool, reason: str = "") -> None:
        payload = encode_status(self.name, online, self._clock.now(), reason)
        await client.publish(self._status_topic, payload, qos=1, retain=True)

    async def _publish_loop(self, client: _AckClient) -> None:
        undelivered = Backoff(initial=0.2, maximum=10.0)
        next_heartbeat = self._clock.now() + self._heartbeat
        while True:
            batch = await self._next_batch(next_heartbeat)
            if batch:
                try:
                    await self._publish_batch(client, batch)
                    undelivered.reset()
                except NotDelivered as exc:
                    self.undelivered += 1
                    self.progress.set()
                    if self._stopping.is_set():
                        return
                    delay = undelivered.next()
                    log.warning(
                        "results not delivered",
                        extra={
                            "agent": self.name,
                            "error": str(exc),
                            "retry_in_s": round(delay, 2),
                        },
                    )
                    await self._pause(delay)
            elif self._stopping.is_set():
                return
            if self._clock.now() >= next_heartbeat:
                await self._say(client, online=True)
                next_heartbeat = self._clock.now() + self._heartbeat

    async def _next_batch(self, heartbeat_due: datetime) -> list[Buffered]:
        """The oldest results once a batch is full or its first result waited long enough."""
        while True:
            self._wakeup.clear()
            count = len(self._buffer)
            now = self._clock.now()
            if count >= self._batch_size or (count and self._stopping.is_set()):
                return await self._buffer.peek(self._batch_size)
            if self._stopping.is_set() or now >= heartbeat_due:
                return []
            wake_at = heartbeat_due
            if count:
                if self._waiting_since is None:
                    self._waiting_since = now
                send_at = self._waiting_since + self._batch_interval
                if now >= send_at:
                    return await self._buffer.peek(self._batch_size)
                wake_at = min(wake_at, send_at)
            with contextlib.suppress(TimeoutError):
                seconds = (wake_at - now).total_seconds()
                await wait_for_clock(self._clock, self._wakeup.wait(), seconds)

    async def _publish_batch(self, client: _AckClient, batch: list[Buffered]) -> None:
        payload = encode_batch(self.name, self._clock.now(), [row.payload for row in batch])
        client.puback = None
        await client.publish(self._results_topic, payload, qos=1)
        code = client.puback
        if code is not None and code.value == _NOT_AUTHORIZED:
            raise NotDelivered(
                f"broker refused {len(batch)} results on {self._results_topic} ({code}): its ACL "
                f"must let user {self.username!r} publish there; they stay buffered"
            )
        if code is not None and (code.is_failure or code.value == _NO_MATCHING_SUBSCRIBERS):
            raise NotDelivered(
                f"broker did not pass on {len(batch)} results ({code}); they stay buffered"
            )
        await self._buffer.delete_through(batch[-1].seq)
        self._waiting_since = None
        self.published += len(batch)
        self.messages += 1
        self.progress.set()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if asked to stop."""
        with contextlib.suppress(TimeoutError):
            await wait_for_clock(self._clock, self._stopping.wait(), seconds)


def agent_username(mqtt: MqttConfig, name: str) -> str | None:
    """The agent's login: ``mqtt.username``, else its name when it has a password, else none
    (an anonymous broker)."""
    if mqtt.username:
        return mqtt.username
    return name if mqtt.password is not None else None


def _delta(value: float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


# --- the ``ctiwatch agent`` process -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentPlan:
    name: str
    locations: tuple[str, ...]
    settings: AgentConfig


def plan_agent(
    config: Config, name: str | None = None, locations: Sequence[str] | None = None
) -> AgentPlan:
    """Who the agent is and what it probes: ``--name``/``--locations`` over the ``agent``
    section; every location when none is given. Raises :class:`ConfigError` naming the problem.
    """
    settings = config.agent or AgentConfig()
    chosen = name or settings.name
    if not chosen:
        raise ConfigError(["agent.name: is required (set it in the config or give --name)"])
    if not _NAME.match(chosen):
        raise ConfigError(
            [f"agent name {chosen!r}: must be lower-case letters, digits, '.', '_' or '-'"]
        )
    login = config.mqtt.username
    if login and login != chosen:
        raise ConfigError(
            [
                f"mqtt.username: an agent logs in as its own name {chosen!r}, not {login!r} "
                "(the broker lets a user publish under its own name only); "
                "leave it out or make it the agent's name"
            ]
        )
    known = [loc.id for c in config.topology.customers for loc in c.locations]
    wanted = list(locations) if locations else list(settings.locations)
    unknown = [loc for loc in wanted if loc not in known]
    if unknown:
        raise ConfigError(
            [
                f"agent.locations: unknown location {loc!r} (known: {', '.join(known) or 'none'})"
                for loc in unknown
            ]
        )
    chosen_locations = tuple(dict.fromkeys(wanted)) if wanted else tuple(known)
    if not chosen_locations:
        raise ConfigError(["topology.customers: the agent has no location to probe"])
    return AgentPlan(chosen, chosen_locations, settings)


async def run_agent(
    config: Config, plan: AgentPlan, *, clock: Clock, stop: asyncio.Event | None = None
) -> None:
    """Probe ``plan.locations`` and publish the results until ``stop`` is set (or cancelled)."""
    from ctiwatch.settings import context_from_config, targets_from_config
    from probes import AiohttpTransport, Scheduler
    from probes.transport import probe_session

    wanted = set(plan.locations)
    targets = [t for t in targets_from_config(config, checks=False) if t.key.location in wanted]
    settings = plan.settings
    stop = stop or asyncio.Event()
    buffer = await ResultBuffer.open(settings.buffer_path, max_rows=settings.buffer_max_rows)
    async with buffer:
        publisher = AgentPublisher(
            config.mqtt,
            plan.name,
            buffer,
            clock=clock,
            batch_size=settings.batch_size,
            batch_interval=settings.batch_interval,
            heartbeat_interval=config.probes.interval,
        )
        connector = aiohttp.TCPConnector(limit=config.probes.concurrency)
        async with probe_session(connector) as session:
            scheduler = Scheduler(
                targets,
                AiohttpTransport(session),
                # Its requests name it (User-Agent), as its results do on the broker.
                replace(context_from_config(config.probes, clock), source=plan.name),
                interval=config.probes.interval,
                on_results=publisher.submit,
                concurrency=config.probes.concurrency,
            )
            log.info(
                "agent probing",
                extra={
                    "agent": plan.name,
                    "targets": len(targets),
                    "locations": ",".join(plan.locations),
                },
            )
            async with asyncio.TaskGroup() as tasks:
                publishing = tasks.create_task(publisher.run())
                probing = tasks.create_task(scheduler.run())
                await stop.wait()
                probing.cancel()
                publisher.stop()
                await publishing
