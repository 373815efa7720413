"""``ctiwatch run`` against what anyone can publish: the poison payloads of issue 10 sent to the
real Mosquitto among valid results (some retained, so every restart meets them again). The
service stays up, stores every valid result, and /healthz answers ok.

Own topic prefix per test; real I/O on a real clock, polled within ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from running_app import HOST, MQTT_PORT, api_headers, broker_or_skip, start, until
from test_app_agents import central_config

from classifier.observation import Service, TargetKey
from ctiwatch.app import Ctiwatch
from ctiwatch.mqtt.topics import Topics

pytestmark = pytest.mark.mqtt

TARGET = TargetKey(Service.CRM, "acme", "acme-ams", "alice")
LATE = "9999-12-31T23:59:59-14:00"
EARLY = "0001-01-01T00:00:00+14:00"


def item(result_id: str, when: datetime, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "result_id": result_id,
        "service": "crm",
        "customer": "acme",
        "location": "acme-ams",
        "user": "alice",
        "at": when.isoformat(),
        "ok": True,
        "recognised": True,
        "latency_ms": 12.0,
        "status": 200,
        "evidence": "POST /lookup -> 200",
        "attempts": 1,
    }
    value.update(changes)
    return value


def batch(*items: dict[str, Any], sent_at: str | None = None) -> bytes:
    return json.dumps(
        {
            "schema": "ctiwatch.results/1",
            "agent": "ams-1",
            "sent_at": sent_at or datetime.now(UTC).isoformat(),
            "results": list(items),
        }
    ).encode()


def status(at: str) -> bytes:
    return json.dumps(
        {"schema": "ctiwatch.agent-status/1", "agent": "ams-1", "status": "online", "at": at}
    ).encode()


async def test_poison_payloads_among_valid_results_leave_the_service_up_and_storing(
    tmp_path: Path,
) -> None:
    broker_or_skip()
    tag = uuid.uuid4().hex[:10]
    topics = Topics(f"ctiwatch-test/{tag}/v1")
    results_topic = topics.results("ams-1")
    now = datetime.now(UTC)
    poison = [
        batch(item(f"{tag}-late", now, at=LATE)),
        batch(item(f"{tag}-early", now, at=EARLY)),
        batch(item(f"{tag}-2027", now + timedelta(days=400))),
        batch(item(f"{tag}-big", now, status=2**63)),
        batch(item(f"{tag}-int32", now, status=2**31)),
        batch(item(f"{tag}-nul", now, evidence="a\x00b")),
        batch(item(f"{tag}-ok-0", now), sent_at=LATE),
        b"\xff\xfe not json",
    ]
    valid_ids: list[str] = []
    try:
        async with aiomqtt.Client(HOST, MQTT_PORT) as sender:
            # Retained: every start of the service meets these first.
            await sender.publish(topics.agent_status("ams-1"), status(LATE), qos=1, retain=True)
            await sender.publish(results_topic, poison[0], qos=1, retain=True)
        for life in range(2):  # a second start meets the retained poison again
            await _one_life(tmp_path, tag, topics, life, poison, valid_ids, now)
    finally:
        async with aiomqtt.Client(HOST, MQTT_PORT) as cleaner:  # clear the retained poison
            await cleaner.publish(topics.agent_status("ams-1"), b"", qos=1, retain=True)
            await cleaner.publish(results_topic, b"", qos=1, retain=True)


async def _one_life(
    tmp_path: Path,
    tag: str,
    topics: Topics,
    life: int,
    poison: list[bytes],
    valid_ids: list[str],
    now: datetime,
) -> None:
    """One start of the service: poison and valid results published, all valid ones stored."""
    results_topic = topics.results("ams-1")
    config = central_config(tmp_path, tag)
    app = Ctiwatch(config)
    stop = asyncio.Event()
    task = await start(app, stop)
    try:
        assert app.ingestion is not None
        await until(lambda: _subscribed(app), "ingestion subscribed")
        async with aiomqtt.Client(HOST, MQTT_PORT) as sender:
            for n, payload in enumerate(poison):
                good = f"{tag}-{life}-{n}"
                valid_ids.append(good)
                # A valid result beside each poison, in the same batch and alone.
                mixed = json.loads(payload) if payload.startswith(b"{") else None
                if mixed is not None and mixed["sent_at"] != LATE:
                    mixed["results"].append(item(good + "-beside", datetime.now(UTC)))
                    valid_ids.append(good + "-beside")
                    payload = json.dumps(mixed).encode()
                await sender.publish(results_topic, payload, qos=1)
                await sender.publish(results_topic, batch(item(good, datetime.now(UTC))), qos=1)
        store = app.store
        assert store is not None

        async def all_stored() -> bool:
            since = now - timedelta(minutes=5)
            rows = await store.results.history(
                TARGET, since, datetime.now(UTC) + timedelta(minutes=1), limit=10_000
            )
            return set(valid_ids) <= {r.result_id for r in rows}

        await until(all_stored, "every valid result stored")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{app.web_url}/healthz") as response:
                assert (response.status, await response.text()) == (200, "ok")
            async with http.get(f"{app.web_url}/") as response:
                assert response.status == 200
        assert not task.done()
        rows = await store.results.history(
            TARGET, datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
        )
        assert not {r.result_id for r in rows} & {
            f"{tag}-{p}" for p in ("late", "early", "2027", "big", "int32", "nul")
        }
        assert app.ingestion.counts.rejected["time_out_of_window"] >= 4
        assert app.ingestion.counts.rejected.get("internal_error", 0) == 0
        assert app.supervisor.problems() == []
    finally:
        stop.set()
        await task


async def _subscribed(app: Ctiwatch) -> bool:
    return app.ingestion is not None and app.ingestion.subscribed.is_set()


async def test_a_batch_naming_another_agent_than_its_topic_is_parked_shown_and_counted(
    tmp_path: Path,
) -> None:
    """An agent publishing under another's name (or a broker whose ACL lets it): the batch is
    rejected, none of its results stored, and parked as a dead letter with its topic and reason,
    listed in the console's dead letters and counted on /metrics."""
    broker_or_skip()
    tag = uuid.uuid4().hex[:10]
    topics = Topics(f"ctiwatch-test/{tag}/v1")
    app = Ctiwatch(central_config(tmp_path, tag))
    stop = asyncio.Event()
    task = await start(app, stop)
    try:
        assert app.ingestion is not None and app.store is not None and app.console is not None
        await until(lambda: _subscribed(app), "ingestion subscribed")
        forged = json.loads(batch(item(f"{tag}-forged", datetime.now(UTC))))
        forged["agent"] = "rtm-1"
        async with aiomqtt.Client(HOST, MQTT_PORT) as sender:
            await sender.publish(topics.results("ams-1"), json.dumps(forged).encode(), qos=1)
        store = app.store

        async def parked() -> bool:
            return bool(await store.dead_letters.latest())

        await until(parked, "the forged batch parked")
        [letter] = await store.dead_letters.latest()
        assert (letter.source, letter.key) == ("mqtt", topics.results("ams-1"))
        assert letter.reason == (
            'agent_mismatch: agent: "rtm-1" does not match the topic\'s agent "ams-1"'
        )
        assert json.loads(letter.payload) == forged
        view = await app.console.status()
        assert [(d.key, d.reason) for d in view.dead_letters] == [(letter.key, letter.reason)]
        headers = await api_headers(app, "viewer")
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(f"{app.web_url}/metrics") as response,
        ):
            metrics = await response.text()
        assert 'ctiwatch_dead_letters_total{source="mqtt"} 1.0' in metrics
        assert 'ctiwatch_mqtt_rejected_total{reason="agent_mismatch"} 1.0' in metrics
        assert app.ingestion.counts.parked == 1
        assert not await store.results.history(
            TARGET, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        )
    finally:
        stop.set()
        await task
