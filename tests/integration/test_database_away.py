"""PostgreSQL unreachable while ``ctiwatch run`` probes and ingests: results (own probes and
agents' over the real Mosquitto) are kept in order, ``/healthz`` says the database is down, and
once it answers again everything is stored and the outage seen meanwhile is opened once, with one
set of pages.

A TCP proxy (asyncio, here) stands between the service and PostgreSQL: cutting it drops every
connection and refuses new ones, as a network partition or a database restart does. "A minute"
costs a few probe rounds: the retry interval is configured short; the test polls real sockets.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from running_app import HOST, MQTT_PORT, api_headers, broker_or_skip, start, until
from sqlalchemy.engine import make_url
from test_app_run import config_data, inject_outage

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.app import Ctiwatch, restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.leadership import Leadership
from ctiwatch.mqtt.topics import Topics
from ctiwatch.persist import Pipeline
from ctiwatch.storage import Store, is_transient

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


class CuttableProxy:
    """Forwards TCP connections to ``target``; :meth:`cut` drops them all and refuses new ones
    until :meth:`restore`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.is_cut = False
        self.refused = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._connected, HOST, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def restore(self) -> None:
        self.is_cut = False

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
        finally:
            for end in (writer, up_writer):
                self._open.discard(end)
                end.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.transport.abort()


@pytest.fixture
async def database(pg_database_factory: object) -> str:
    return await pg_database_factory()  # type: ignore[operator,no-any-return]


@pytest.fixture
async def proxy(database: str) -> AsyncIterator[CuttableProxy]:
    url = make_url(database)
    async with CuttableProxy(str(url.host), int(url.port or 5432)) as running:
        yield running


def item(result_id: str) -> dict[str, object]:
    return {
        "result_id": result_id,
        "service": "crm",
        "customer": "acme",
        "location": "acme-ams",
        "user": "alice",
        "at": datetime.now(UTC).isoformat(),
        "ok": True,
        "recognised": True,
        "latency_ms": 9.0,
        "status": 200,
        "evidence": "POST /lookup -> 200",
        "attempts": 1,
    }


async def publish_results(topics: Topics, ids: list[str]) -> None:
    async with aiomqtt.Client(HOST, MQTT_PORT) as sender:
        for result_id in ids:
            payload = {
                "schema": "ctiwatch.results/1",
                "agent": "ams-1",
                "sent_at": datetime.now(UTC).isoformat(),
                "results": [item(result_id)],
            }
            await sender.publish(topics.results("ams-1"), json.dumps(payload).encode(), qos=1)


async def test_postgres_unreachable_keeps_every_result_and_catches_up_with_one_incident(
    tmp_path: Path, database: str, proxy: CuttableProxy
) -> None:
    broker_or_skip()
    tag = uuid.uuid4().hex[:10]
    data = config_data(tmp_path)
    data["storage"] = {
        "url": make_url(database).set(port=proxy.port).render_as_string(hide_password=False),
        "retry_interval": "0.2s",
    }
    data["mqtt"] = {
        "enabled": True,
        "host": HOST,
        "port": MQTT_PORT,
        "topic_prefix": f"ctiwatch-test/{tag}/v1",
        "shared_group": f"g{tag}",
    }
    config = Config.model_validate(data)
    topics = Topics(config.mqtt.topic_prefix)
    app = Ctiwatch(config)

    probed: list[str] = []  # every result the scheduler handed over, in order
    batches: list[int] = []
    handle = app._probe_results

    async def recording(batch: list[ProbeResult]) -> None:
        probed.extend(r.result_id for r in batch)
        batches.append(len(batch))
        await handle(batch)

    app._probe_results = recording  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = await start(app, stop)
    try:
        pipeline, ingestion = app.pipeline, app.ingestion
        assert pipeline is not None and ingestion is not None
        await until(lambda: _true(ingestion.subscribed.is_set()), "ingestion subscribed")
        await until(lambda: _true(len(probed) > 0), "a first probe round")
        async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
            assert await healthz(http, app) == (200, "ok")
            # The token is checked once while the database answers: through the outage this
            # process trusts what it saw (the fault injection and /metrics need it).
            async with http.get(f"{app.web_url}/api/v1/incidents") as response:
                assert response.status == 200

            proxy.cut()
            cut_at = len(batches)
            await inject_outage(http, app)  # seen only while the database is away
            # Several probe rounds (one a second) while it is away, an agent's results among them.
            await until(
                lambda: _true(len(batches) >= cut_at + 4 and len(pipeline.backlog) > 0),
                "probe rounds kept while the database is away",
            )
            agent_ids = [f"{tag}-agent-{n}" for n in range(5)]
            await publish_results(topics, agent_ids)
            await until(
                lambda: _true(ingestion.counts.accepted >= len(agent_ids)),
                "the agent's results received",
            )
            status, text = await healthz(http, app)
            assert status == 503 and text.startswith("database: unreachable since "), text
            metrics = await metrics_text(http, app)
            assert "ctiwatch_database_up 0.0" in metrics
            # Nothing ran ahead of the database: the outage is not applied before it is stored.
            assert app.monitor is not None and app.monitor.engine.open_incident("acme") is None

            proxy.restore()
            await until(
                lambda: _true(len(pipeline.backlog) == 0 and pipeline.unreachable_since is None),
                "the backlog stored once the database is back",
            )
            assert await healthz(http, app) == (200, "ok")
            assert pipeline.backlog.dropped == 0 and pipeline.backlog.kept > 0

            twilio = app.fake_twilio
            assert twilio is not None
            await until(
                lambda: _true(any("ACK 1" in m.body for m in twilio.messages)),
                "the page of the incident the outage opened",
            )
            assert "ctiwatch_database_up 1.0" in await metrics_text(http, app)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)

    assert proxy.refused > 0  # the service did try while it was cut
    async with Store.open(database, migrate=False) as store:
        stored = {r.result_id for r in await _all_results(store)}
        assert set(probed) <= stored, f"{len(set(probed) - stored)} probe results lost"
        assert set(agent_ids) <= stored
        incidents = await store.incidents.list()
        assert [(i.number, i.customer) for i in incidents] == [(1, "acme")]
        keys = Counter(m.idempotency_key for m in await store.outbox.list(limit=1000))
        assert keys and set(keys.values()) == {1}
    assert Counter(m.idempotency_key for m in twilio.messages).most_common(1)[0][1] == 1


async def _true(value: bool) -> bool:
    return value


async def healthz(http: aiohttp.ClientSession, app: Ctiwatch) -> tuple[int, str]:
    async with http.get(f"{app.web_url}/healthz") as response:
        return response.status, await response.text()


async def metrics_text(http: aiohttp.ClientSession, app: Ctiwatch) -> str:
    async with http.get(f"{app.web_url}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def _all_results(store: Store) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    for target in {r.target for r in await store.results.latest()}:
        results += await store.results.history(
            target,
            datetime(2000, 1, 1, tzinfo=UTC),
            datetime(2100, 1, 1, tzinfo=UTC),
            limit=100_000,
        )
    return results


async def test_a_follower_keeps_its_results_while_the_database_is_away_and_stores_them_in_order(
    tmp_path: Path, database: str, proxy: CuttableProxy
) -> None:
    """A worker beside the active monitor: what it probes while the database is away waits in
    the same bounded backlog (the oldest dropped beyond it, counted), and is stored in order once
    the database answers; it never applies them itself (the active monitor reads them back) and
    only shows them on its own pages."""
    clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    through = make_url(database).set(port=proxy.port).render_as_string(hide_password=False)
    config = Config.model_validate(config_data(tmp_path) | {"storage": {"url": through}})
    target = TargetKey(Service.CRM, "acme", "acme-ams", "alice")

    def result(n: int) -> ProbeResult:
        at = clock.now() + timedelta(seconds=n)
        return ProbeResult(f"f{n:02d}", target, at, False, None, 5.0, 503, "POST -> 503")

    async with Store.open(database) as direct, Store.open(through) as store:
        leader = Leadership(direct.leader, clock, "node-a/1/aaa")
        assert await leader.try_once()
        follower = Leadership(store.leader, clock, "node-b/2/bbb")
        assert not await follower.try_once()
        monitor = await restore_monitor(config, store, clock)
        pipeline = Pipeline(
            monitor, store, clock, leadership=follower, transient=is_transient, backlog=5
        )

        proxy.cut()
        for batch in ([1, 2], [3], [4, 5, 6], [7]):
            await pipeline.on_results([result(n) for n in batch])
        assert len(pipeline.backlog) == 5 and pipeline.backlog.dropped == 2
        [problem] = pipeline.problems()
        assert problem.startswith("database: unreachable since") and "2 dropped" in problem

        proxy.restore()
        catching_up = asyncio.create_task(pipeline.catch_up())
        try:

            async def stored() -> bool:
                return not len(pipeline.backlog) and pipeline.unreachable_since is None

            await until(stored, "the follower's backlog stored")
        finally:
            catching_up.cancel()
        rows = await direct.results.stored_after(0)
    assert [result.result_id for _, result in rows] == ["f03", "f04", "f05", "f06", "f07"]
    assert [r for _, r in rows] == sorted((r for _, r in rows), key=lambda r: r.at)
    # Stored for the active monitor, not applied here: the follower opened no incident (its
    # classifier sees the results for its own pages only).
    assert not monitor.engine.open_incidents()
