"""Remote agents in the running service: ``ctiwatch run`` in-process, an agent process, the
real Mosquitto at 127.0.0.1:1883 (unreachable: skip, or fail under CI).

Every test uses its own topic prefix and agent name, so tests (and a demo running on the same
broker) never see each other's messages. Real I/O on a real clock: the tests poll, bounded by
``asyncio.timeout``; nothing waits a fixed time as a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
import yaml
from running_app import (
    HOST,
    MQTT_PORT,
    WAIT_SECONDS,
    api_headers,
    broker_or_skip,
    free_ports,
    start,
    until,
)

from classifier.observation import Service, Source, TargetKey
from ctiwatch.app import Ctiwatch
from ctiwatch.config import Config
from ctiwatch.mqtt.topics import Topics

pytestmark = pytest.mark.mqtt

ROOT = Path(__file__).resolve().parents[2]
ONCALL = ("+31612345678", "+31687654321")


TOPOLOGY = {
    "customers": [
        {
            "id": "acme",
            "name": "ACME B.V.",
            "locations": [{"id": "acme-ams", "name": "Amsterdam", "users": ["alice", "bob"]}],
        },
        {"id": "globex", "locations": [{"id": "globex-utr", "users": ["frank"]}]},
    ]
}


def central_config(tmp_path: Path, tag: str, mqtt_port: int = MQTT_PORT) -> Config:
    web, simulator, twilio, smtp = free_ports(4)
    return Config.model_validate(
        {
            "topology": TOPOLOGY,
            # Agents go stale after 3 central intervals (6 s): longer than a slow round.
            "probes": {
                "base_url": f"http://{HOST}:{simulator}",
                "interval": "2s",
                "timeout": "1s",
                "retries": 0,
            },
            "alerting": {
                "oncall": list(ONCALL),
                # These tests run on the real clock, at any hour: an agent's alerts go out at
                # once (by default they wait for support hours; tests/unit/test_paging.py).
                "paging": {"agent_alerts": "any_hour"},
                "fakes": True,
                "twilio": {
                    "base_url": f"http://{HOST}:{twilio}",
                    "webhook_base_url": f"http://{HOST}:{web}",
                },
                "smtp": {"host": HOST, "port": smtp},
            },
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/db/ctiwatch.db"},
            "mqtt": {
                "enabled": True,
                "host": HOST,
                "port": mqtt_port,
                "topic_prefix": f"ctiwatch-test/{tag}/v1",
                "shared_group": f"g{tag}",
            },
            "web": {"host": HOST, "port": web},
            "simulator": {"enabled": True, "host": HOST, "port": simulator},
        }
    )


def agent_config_file(tmp_path: Path, central: Config, name: str) -> Path:
    data: dict[str, Any] = {
        "topology": {
            "customers": [
                {
                    "id": "acme",
                    "locations": [{"id": "acme-ams", "users": ["alice", "bob"]}],
                }
            ]
        },
        "agent": {
            "name": name,
            "locations": ["acme-ams"],
            "buffer_path": str(tmp_path / "agent-buffer.db"),
            "batch_size": 50,
            "batch_interval": "100ms",
        },
        "probes": {
            "base_url": central.probes.base_url,
            "interval": "1s",
            "timeout": "1s",
            "retries": 0,
        },
        "mqtt": {
            "enabled": True,
            "host": HOST,
            "port": MQTT_PORT,
            "topic_prefix": central.mqtt.topic_prefix,
        },
        "simulator": {"enabled": False},
        "logging": {"level": "WARNING"},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def status_json(http: aiohttp.ClientSession, app: Ctiwatch) -> Any:
    async with http.get(f"{app.web_url}/api/v1/status") as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def spawn_agent(config_file: Path) -> asyncio.subprocess.Process:
    """``ctiwatch agent --config FILE``, the documented command."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ctiwatch",
        "agent",
        "--config",
        str(config_file),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def forget_retained(topic: str) -> None:
    """Leave no retained status behind on the shared broker."""
    async with aiomqtt.Client(HOST, MQTT_PORT) as client:
        await client.publish(topic, b"", qos=1, retain=True)


def agent_row(status: Any, name: str) -> Any:
    return next((a for a in status["agents"] if a["name"] == name), None)


async def test_agent_results_arrive_and_its_death_alerts_oncall_not_customers(
    tmp_path: Path,
) -> None:
    broker_or_skip()
    tag = uuid.uuid4().hex[:12]
    name = f"ams-test-{tag}"
    config = central_config(tmp_path, tag)
    stop = asyncio.Event()
    app = Ctiwatch(config)
    task = await start(app, stop)
    agent: asyncio.subprocess.Process | None = None
    try:
        assert app.ingestion is not None and app.store is not None
        async with asyncio.timeout(WAIT_SECONDS):
            await app.ingestion.subscribed.wait()
        agent_file = agent_config_file(tmp_path, config, name)
        agent = await spawn_agent(agent_file)
        async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
            seen: dict[str, Any] = {}

            async def online_with_results() -> bool:
                row = agent_row(await status_json(http, app), name)
                seen["row"] = row
                return (
                    row is not None and row["status"] == "online" and (row["results_received"] >= 4)
                )

            await until(online_with_results, "the agent online with results on /api/v1/status")
            row = seen["row"]
            assert (row["location"], row["locations"], row["reason"]) == (
                "acme-ams",
                ["acme-ams"],
                "",
            )
            status = await status_json(http, app)
            assert status["mqtt"] == {
                "broker": f"{HOST}:{MQTT_PORT}",
                "state": "connected",
                "detail": "",
            }

            # The agent's results went through the pipeline into the store.
            store = app.store
            alice = TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", "alice")
            now = app.clock.now()

            async def agent_results_stored() -> bool:
                history = await store.results.history(
                    alice, now - timedelta(minutes=5), now + timedelta(minutes=5)
                )
                return any(r.source is Source.AGENT and r.ok for r in history)

            await until(agent_results_stored, "the agent's results in the store")
            assert app.ingestion.results_from(name) == app.ingestion.counts.accepted

            async with http.get(f"{app.web_url}/") as response:
                page = await response.text()
            assert f'<tr data-agent="{name}" data-status="online">' in page
            assert '<th class="num">Results received</th>' in page
            assert '<div class="mqtt m-connected" id="mqtt" data-state="connected">' in page

            # Killed (no clean disconnect): the broker publishes its last will.
            agent.send_signal(signal.SIGKILL)
            await agent.wait()
            agent = None
            twilio = app.fake_twilio
            assert twilio is not None

            async def offline_shown() -> bool:
                row = agent_row(await status_json(http, app), name)
                return row is not None and row["status"] == "offline"

            await until(offline_shown, "the agent offline on /api/v1/status")
            row = agent_row(await status_json(http, app), name)
            assert row["reason"] == "connection lost"

            async def texted_oncall() -> bool:
                # Delivered, and marked sent once the fake Twilio accepted it.
                rows = [m for m in await store.outbox.list(limit=100) if name in m.body]
                return {m.to for m in twilio.messages if name in m.body} >= set(ONCALL) and all(
                    m.status == "sent" for m in rows
                )

            await until(texted_oncall, "the agent_offline SMS to on-call, sent and marked sent")
            texts = [m for m in twilio.messages if name in m.body]
            assert sorted(m.to for m in texts) == sorted(ONCALL)
            assert len({m.body for m in texts}) == 1  # the same text to every number
            assert texts[0].body.startswith(
                f"CTIWATCH INTERNAL: probe agent {name} offline (connection lost), last seen "
            )
            assert texts[0].body.endswith(". Not a customer incident.")
            sent = [m for m in await store.outbox.list(limit=100) if name in m.body]
            assert sorted((m.kind, m.recipient, m.incident_number, m.status) for m in sent) == [
                ("agent_offline", number, None, "sent") for number in sorted(ONCALL)
            ]
            # An internal problem: no incident, nothing told to the customer or support.
            assert await store.incidents.list(limit=10) == []
            stored = await store.agents.get(name)
            assert stored is not None and stored.status == "offline"

            # Started again: online on the page, and on-call hears it is back.
            agent = await spawn_agent(agent_file)

            async def back() -> bool:
                row = agent_row(await status_json(http, app), name)
                told = {m.to for m in twilio.messages if f"{name} back online" in m.body}
                return row is not None and row["status"] == "online" and told >= set(ONCALL)

            await until(back, "the agent back online and the agent_back SMS")
            kinds = sorted(m.kind for m in await store.outbox.list(limit=100) if name in m.body)
            assert kinds == ["agent_back", "agent_back", "agent_offline", "agent_offline"]
    finally:
        if agent is not None:
            with contextlib.suppress(ProcessLookupError):
                agent.send_signal(signal.SIGKILL)
            await agent.wait()
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)
        await forget_retained(Topics(config.mqtt.topic_prefix).agent_status(name))


async def test_unreachable_broker_is_one_warning_a_note_on_the_status_page_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ctiwatch.mqtt.ingest")
    (closed,) = free_ports(1)
    config = central_config(tmp_path, uuid.uuid4().hex[:12], mqtt_port=closed)
    stop = asyncio.Event()
    app = Ctiwatch(config)
    task = await start(app, stop)
    try:
        assert app.store is not None
        store = app.store

        def records(message: str) -> list[logging.LogRecord]:
            return [
                r for r in caplog.records if r.name == "ctiwatch.mqtt.ingest" and r.msg == message
            ]

        async def retried_twice() -> bool:
            return len(records("mqtt retry failed")) >= 2

        await until(retried_twice, "two reconnection attempts")
        warnings = records("mqtt broker unreachable; retrying with backoff")
        assert [r.levelno for r in warnings] == [logging.WARNING]

        async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
            status = await status_json(http, app)
            assert status["mqtt"]["broker"] == f"{HOST}:{closed}"
            assert status["mqtt"]["state"] == "unreachable"
            assert status["mqtt"]["detail"] != ""
            assert status["agents"] == []  # the broker is not an agent
            async with http.get(f"{app.web_url}/") as response:
                page = await response.text()
            assert '<div class="mqtt m-unreachable" id="mqtt" data-state="unreachable">' in page
            assert "MQTT broker unreachable: agents' results cannot arrive (" in page

        # Everything else runs: the central probes' results are stored.
        async def probed() -> bool:
            return bool(await store.results.latest("acme", "acme-ams"))

        await until(probed, "central probe results while the broker is unreachable")
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)
