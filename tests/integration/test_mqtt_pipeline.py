"""Agent → Mosquitto → ingestion, for real.

Against the machine's Mosquitto (127.0.0.1:1883) for the normal path, and against a private
Mosquitto that the test starts, kills and restarts on its own port for the outage (the machine's
broker is never touched). Every test uses its own topic prefix and shared group, so tests never
see each other's messages. Waits are bounded (``asyncio.timeout``) and wait for events, not time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from ci import unavailable
from private_broker import MOSQUITTO, PrivateBroker

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.clock import RealClock
from ctiwatch.config import MqttConfig, TopologyConfig, config_from_data
from ctiwatch.mqtt.agent import AgentPublisher
from ctiwatch.mqtt.backoff import Backoff
from ctiwatch.mqtt.buffer import ResultBuffer
from ctiwatch.mqtt.ingest import AgentHealth, AgentState, Ingestion
from ctiwatch.mqtt.schema import encode_call, encode_results, encode_status

pytestmark = pytest.mark.mqtt

HOST = "127.0.0.1"
MACHINE_PORT = 1883
# Recent: ingestion takes results from the last 24 h only (mqtt.max_age).
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
TOPOLOGY: TopologyConfig = config_from_data(
    {
        "topology": {
            "customers": [
                {
                    "id": "acme",
                    "locations": [
                        {"id": "ams", "users": ["alice", "bob"]},
                        {"id": "rtm", "users": ["carol"]},
                    ],
                }
            ]
        }
    }
).topology
USERS = [("ams", "alice"), ("ams", "bob"), ("rtm", "carol")]


def reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2):
        return True
    return False


@pytest.fixture
def machine_broker() -> int:
    if not reachable(MACHINE_PORT):
        unavailable(f"Mosquitto at {HOST}:{MACHINE_PORT} is unreachable")
    return MACHINE_PORT


def mqtt_config(port: int) -> MqttConfig:
    # A prefix and group of its own: nothing published by another test reaches this one.
    tag = uuid.uuid4().hex[:12]
    return MqttConfig(
        enabled=True,
        host=HOST,
        port=port,
        topic_prefix=f"ctiwatch-test/{tag}/v1",
        shared_group=f"g{tag}",
    )


def results(first: int, count: int) -> list[ProbeResult]:
    return [
        ProbeResult(
            result_id=f"r{n:05d}",
            target=TargetKey(Service.CRM if n % 2 else Service.CLICK2DIAL, "acme", *USERS[n % 3]),
            at=T0 + timedelta(seconds=n),
            ok=n % 7 != 0,
            recognised=(n % 5 != 0) if n % 2 else None,
            latency_ms=float(n % 90),
            status=200,
            evidence=f"probe {n}",
            source=Source.AGENT,
            attempts=1,
            source_id="ams-1",
        )
        for n in range(first, first + count)
    ]


class Collector:
    """The ingestion sink: keeps everything it is given, in order."""

    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.agent_states: list[AgentState] = []
        self._changed = asyncio.Event()

    async def sink(self, batch: list[ProbeResult]) -> None:
        self.results.extend(batch)
        self._changed.set()

    async def on_agent_change(self, state: AgentState) -> None:
        self.agent_states.append(state)
        self._changed.set()

    async def wait_for_results(self, count: int, seconds: float = 20) -> None:
        async with asyncio.timeout(seconds):
            while len(self.results) < count:
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_agent(
        self, name: str, health: AgentHealth, seconds: float = 20
    ) -> AgentState:
        async with asyncio.timeout(seconds):
            while True:
                found = [s for s in self.agent_states if (s.name, s.health) == (name, health)]
                if found:
                    return found[-1]
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def running(
    ingestion: Ingestion | None = None, publisher: AgentPublisher | None = None
) -> AsyncIterator[None]:
    """Run the ingestion and/or a publisher; stop them (and raise their errors) on the way out."""
    async with asyncio.TaskGroup() as tasks:
        if ingestion is not None:
            tasks.create_task(ingestion.run())
        if publisher is not None:
            tasks.create_task(publisher.run())
        try:
            yield
        finally:
            if publisher is not None:
                publisher.stop()
            if ingestion is not None:
                ingestion.stop()


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.5)


# --- the normal path, through the machine's broker ---------------------------------------------


async def test_every_published_result_reaches_the_sink_exactly_once(
    machine_broker: int, tmp_path: Path
) -> None:
    config = mqtt_config(machine_broker)
    collected = Collector()
    ingestion = Ingestion(
        config,
        TOPOLOGY,
        collected.sink,
        clock=RealClock(),
        on_agent_change=collected.on_agent_change,
    )
    expected = results(0, 1234)
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        publisher = AgentPublisher(
            config, "ams-1", buffer, clock=RealClock(), batch_size=100, batch_interval=0.05
        )
        async with running(ingestion):
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(publisher.run())
                async with asyncio.timeout(10):
                    await ingestion.subscribed.wait()
                    await publisher.connected.wait()
                for chunk in range(0, len(expected), 97):
                    await publisher.submit(expected[chunk : chunk + 97])
                await collected.wait_for_results(len(expected))
                online = await collected.wait_for_agent("ams-1", AgentHealth.ONLINE)
                publisher.stop()
            offline = await collected.wait_for_agent("ams-1", AgentHealth.OFFLINE)

        assert collected.results == expected  # one agent, one topic: in order, once each
        assert ingestion.counts.snapshot() == {
            "messages": ingestion.counts.messages,
            "accepted": 1234,
            "duplicates": 0,
            "rejected": {},
            "parked": 0,
        }
        assert publisher.published == 1234
        assert publisher.messages >= 13  # batches of at most 100
        assert len(buffer) == 0
        assert online.name == "ams-1"
        assert (offline.name, offline.reason) == ("ams-1", "stopped")


async def test_malformed_payloads_are_rejected_counted_and_the_consumer_keeps_going(
    machine_broker: int,
) -> None:
    config = mqtt_config(machine_broker)
    prefix = config.topic_prefix
    collected = Collector()
    ingestion = Ingestion(
        config,
        TOPOLOGY,
        collected.sink,
        clock=RealClock(),
        on_agent_change=collected.on_agent_change,
    )
    good_batch = encode_results("ams-1", T0, results(0, 2))
    good_call = encode_call(
        call_id="c-1", caller="+31201234567", location="rtm", user="carol", recognised=False, at=T0
    )
    unknown_user_call = encode_call(
        call_id="c-2", caller="+31201234567", location="rtm", user="dave", recognised=True, at=T0
    )
    wrong_version = json.loads(good_batch)
    wrong_version["schema"] = "ctiwatch.results/7"
    bad_service = json.loads(good_batch)
    bad_service["results"][1]["service"] = "fax"

    async with running(ingestion):
        async with asyncio.timeout(10):
            await ingestion.subscribed.wait()
        async with aiomqtt.Client(HOST, config.port) as sender:
            # Per topic, MQTT keeps the order: when the good message of a topic has arrived,
            # every bad one before it on that topic has been handled.
            for topic, payload in [
                (f"{prefix}/results/ams-1", b"\x00\xff not json"),
                (f"{prefix}/results/ams-1", json.dumps(wrong_version).encode()),
                (f"{prefix}/results/ams-1", json.dumps(bad_service).encode()),
                (f"{prefix}/results/ams-1", good_batch),
                (f"{prefix}/calls/acme", unknown_user_call),
                (f"{prefix}/calls/acme", good_call),
                (f"{prefix}/agents/rtm-1/status", b'{"status": "online"}'),
                (f"{prefix}/agents/rtm-1/status", encode_status("rtm-1", True, T0)),
            ]:
                await sender.publish(topic, payload, qos=1)
        await collected.wait_for_results(3)
        await collected.wait_for_agent("rtm-1", AgentHealth.ONLINE)

    assert sorted(r.result_id for r in collected.results) == ["call:acme:c-1", "r00000", "r00001"]
    assert ingestion.counts.snapshot() == {
        "messages": 8,
        "accepted": 3,
        "duplicates": 1,  # the bad service's batch-mate: judged alone, already received
        "rejected": {
            "invalid_json": 1,
            "invalid_payload": 1,
            "unknown_user": 1,
            "unsupported_schema": 2,
        },
        "parked": 0,
    }


async def test_results_wait_on_disk_until_a_central_worker_subscribes(
    machine_broker: int, tmp_path: Path
) -> None:
    config = mqtt_config(machine_broker)
    collected = Collector()
    ingestion = Ingestion(config, TOPOLOGY, collected.sink, clock=RealClock())
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        publisher = AgentPublisher(
            config,
            "ams-1",
            buffer,
            clock=RealClock(),
            batch_size=50,
            batch_interval=0.05,
            backoff=fast_backoff(),
        )
        async with running(publisher=publisher):
            await publisher.submit(results(0, 120))
            # MQTT 5 PUBACK "no matching subscribers": nobody got it, so it stays on disk.
            async with asyncio.timeout(10):
                while publisher.undelivered == 0:
                    publisher.progress.clear()
                    await publisher.progress.wait()
            assert (publisher.published, len(buffer)) == (0, 120)

            async with running(ingestion):
                await collected.wait_for_results(120)

        assert [r.result_id for r in collected.results] == [f"r{n:05d}" for n in range(120)]
        assert (publisher.published, len(buffer)) == (120, 0)


# --- a broker outage, on a private broker ------------------------------------------------------


@pytest.fixture
async def private_broker(tmp_path: Path) -> AsyncIterator[PrivateBroker]:
    if shutil.which(MOSQUITTO) is None:
        unavailable(f"{MOSQUITTO} is not installed")
    broker = PrivateBroker(tmp_path)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.kill()


async def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    private_broker: PrivateBroker, tmp_path: Path
) -> None:
    config = mqtt_config(private_broker.port)
    collected = Collector()
    ingestion = Ingestion(
        config, TOPOLOGY, collected.sink, clock=RealClock(), backoff=fast_backoff()
    )
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        publisher = AgentPublisher(
            config,
            "ams-1",
            buffer,
            clock=RealClock(),
            batch_size=50,
            batch_interval=0.05,
            publish_timeout=2.0,
            backoff=fast_backoff(),
        )
        async with running(ingestion, publisher):
            async with asyncio.timeout(10):
                await ingestion.subscribed.wait()
                await publisher.connected.wait()
            await publisher.submit(results(0, 300))
            await collected.wait_for_results(300)

            await private_broker.kill()
            for first in range(300, 700, 40):  # the probes keep producing: onto the disk
                await publisher.submit(results(first, 40))
            assert publisher.buffered >= 400 - 50  # at most one batch was in flight

            await private_broker.start()
            await collected.wait_for_results(700, seconds=30)

        received = [r.result_id for r in collected.results]
        assert len(received) == 700
        assert sorted(received) == [f"r{n:05d}" for n in range(700)]
        assert received == sorted(received)  # replayed in order
        assert ingestion.counts.accepted == 700
        assert len(buffer) == 0
