"""``ctiwatch run`` while what it must log is hostile: an 8 KB query string on the unauthenticated
``POST /twilio/sms`` and a 16 KB MQTT topic (both logged as rejections), sent again and again,
with valid results among them on the real Mosquitto. ``/healthz``, asked concurrently, stays
under 250 ms (the issue's own bound for this live test; median and max of every call), every
valid result is stored and no request answers 500.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from running_app import HOST, MQTT_PORT, broker_or_skip, start, until
from test_app_agents import central_config
from test_app_poison import TARGET, batch, item

from ctiwatch.app import Ctiwatch

pytestmark = pytest.mark.mqtt

ROUNDS = 12
HEALTHZ_BOUND = 0.250  # seconds


async def test_healthz_stays_fast_while_huge_query_strings_and_topics_are_logged(
    tmp_path: Path,
) -> None:
    broker_or_skip()
    tag = uuid.uuid4().hex[:10]
    app = Ctiwatch(central_config(tmp_path, tag))
    stop = asyncio.Event()
    task = await start(app, stop)
    valid: list[str] = []
    statuses: list[int] = []
    took: list[float] = []
    try:
        assert app.ingestion is not None
        ingestion = app.ingestion

        async def subscribed() -> bool:
            return ingestion.subscribed.is_set()

        await until(subscribed, "ingestion subscribed")
        topics = ingestion.topics
        huge_topic = topics.results("a" * 16_000)  # an agent name of 16 KB: rejected, logged
        query = "q=" + "A" * 8_000
        started = datetime.now(UTC)
        async with aiohttp.ClientSession() as http, aiomqtt.Client(HOST, MQTT_PORT) as mqtt:

            async def hostile(n: int) -> None:
                async with http.post(f"{app.web_url}/twilio/sms?{query}", data={"Body": "x"}) as r:
                    statuses.append(r.status)
                await mqtt.publish(huge_topic, batch(item(f"{tag}-h{n}", datetime.now(UTC))))
                good = f"{tag}-v{n}"
                valid.append(good)
                await mqtt.publish(
                    topics.results("ams-1"), batch(item(good, datetime.now(UTC))), qos=1
                )

            async def healthz() -> None:
                began = time.perf_counter()
                async with http.get(f"{app.web_url}/healthz") as r:
                    await r.read()
                    statuses.append(r.status)
                took.append(time.perf_counter() - began)

            for n in range(ROUNDS):
                await asyncio.gather(hostile(n), healthz(), healthz())

        store = app.store
        assert store is not None

        async def all_stored() -> bool:
            rows = await store.results.history(
                TARGET, started - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)
            )
            return set(valid) <= {r.result_id for r in rows}

        await until(all_stored, "every valid result stored")
        assert sum(ingestion.counts.rejected.values()) >= ROUNDS, ingestion.counts.rejected
        assert not task.done()
    finally:
        stop.set()
        await task
    assert 500 not in statuses and all(s < 500 for s in statuses), statuses
    assert len(took) == 2 * ROUNDS
    assert statistics.median(took) < HEALTHZ_BOUND and max(took) < HEALTHZ_BOUND, took
