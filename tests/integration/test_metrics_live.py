"""``/metrics`` of ``ctiwatch run`` itself, over real sockets, checked by ``promtool``.

The real service (simulator, own probes, the machine's Mosquitto with an agent publishing, fake
Twilio and SMTP) runs until it has an outage incident open and paged; then its ``/metrics`` must
pass ``promtool check metrics`` (Debian package ``prometheus``; ``make system-deps``) and export
exactly the catalogue of ``ctiwatch.metrics`` (so the dashboard and the reference, both checked
against the catalogue in ``tests/unit/test_metrics.py``, name what the service exports).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import aiomqtt
from ci import unavailable
from prometheus_client.parser import text_string_to_metric_families
from running_app import HOST, MQTT_PORT, api_headers, broker_or_skip, free_ports, start, until

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.app import Ctiwatch
from ctiwatch.config import Config
from ctiwatch.metrics import FAMILIES
from ctiwatch.mqtt.schema import encode_results
from ctiwatch.mqtt.topics import Topics

ONCALL = "+31612345678"
AGENT = "ams-1"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is not installed (Debian package prometheus: make system-deps)")
    return found


def config(tmp_path: Path, prefix: str) -> Config:
    web, simulator, twilio, smtp = free_ports(4)
    return Config.model_validate(
        {
            "topology": {
                "customers": [
                    {
                        "id": "acme",
                        "name": "ACME B.V.",
                        "locations": [{"id": "acme-ams", "users": ["alice", "bob"]}],
                    },
                    {"id": "globex", "locations": [{"id": "globex-utr", "users": ["frank"]}]},
                ]
            },
            "probes": {
                "base_url": f"http://{HOST}:{simulator}",
                "interval": "1s",
                "timeout": "0.5s",
                "retries": 0,
            },
            "alerting": {
                "oncall": [ONCALL],
                "fakes": True,
                "twilio": {
                    "base_url": f"http://{HOST}:{twilio}",
                    "webhook_base_url": f"http://{HOST}:{web}",
                },
                "smtp": {"host": HOST, "port": smtp},
            },
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/ctiwatch.db"},
            "mqtt": {
                "enabled": True,
                "host": HOST,
                "port": MQTT_PORT,
                "topic_prefix": prefix,
                "shared_group": f"g{uuid.uuid4().hex[:12]}",
            },
            "web": {"host": HOST, "port": web},
            "simulator": {"enabled": True, "host": HOST, "port": simulator},
        }
    )


def agent_result(user: str, at: datetime) -> ProbeResult:
    return ProbeResult(
        result_id=f"{AGENT}-{user}-{uuid.uuid4().hex}",
        target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", user),
        at=at,
        ok=True,
        recognised=None,
        latency_ms=85.0,
        status=201,
        evidence="[STATUS] (201) == 201",
        source=Source.AGENT,
        source_id=AGENT,
    )


async def scrape(http: aiohttp.ClientSession, app: Ctiwatch) -> str:
    """What Prometheus reads, with a viewer token as it would have."""
    async with http.get(
        f"{app.web_url}/metrics", headers=await api_headers(app, "viewer")
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return await response.text()


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def test_metrics_of_the_running_service_pass_promtool_and_are_the_catalogue(
    tmp_path: Path,
) -> None:
    tool = promtool()
    broker_or_skip()
    prefix = f"ctiwatch-test/{uuid.uuid4().hex[:12]}/v1"
    app = Ctiwatch(config(tmp_path, prefix))
    stop = asyncio.Event()
    task = await start(app, stop)
    try:
        async with aiohttp.ClientSession() as http:
            fault = {
                "service": "click2dial",
                "customer": "acme",
                "location": "acme-ams",
                "kind": "outage",
            }
            admin = await api_headers(app)
            async with http.post(
                f"{app.simulator_url}/admin/faults", json=fault, headers=admin
            ) as response:
                assert response.status == 201, await response.text()
            ingestion = app.ingestion
            assert ingestion is not None
            await until(lambda: _true(ingestion.subscribed.is_set()), "the MQTT subscription")
            topics = Topics(prefix)
            async with aiomqtt.Client(HOST, MQTT_PORT) as client:
                now = datetime.now(UTC)
                batch = [agent_result(u, now) for u in ("alice", "bob")]
                await client.publish(
                    topics.results(AGENT), encode_results(AGENT, now, batch), qos=1
                )
                await client.publish(topics.results(AGENT), b"{not json", qos=1)

            async def paged_and_seen() -> bool:
                text = await scrape(http, app)
                sent = sample(text, "ctiwatch_alerts_total", channel="sms", outcome="sent")
                deadline = sample(text, "ctiwatch_incident_sla_deadline_seconds", incident="1")
                agent_up = sample(text, "ctiwatch_target_up", source=AGENT, user="bob")
                rejected = sample(text, "ctiwatch_mqtt_rejected_total", reason="invalid_json")
                return bool(sent) and deadline is not None and agent_up == 1 and rejected == 1

            await until(paged_and_seen, "incident 1 paged, the agent's results and its bad message")
            text = await scrape(http, app)

        checked = await asyncio.create_subprocess_exec(
            tool,
            "check",
            "metrics",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await checked.communicate(text.encode())
        assert checked.returncode == 0, output.decode()
        assert output.decode().strip() == ""  # no lint finding either

        # Exactly the catalogue: no family outside it, none of it missing.
        exported = set(re.findall(r"^# TYPE (ctiwatch_\w+) ", text, re.M))
        assert exported == {family.exposed for family in FAMILIES}

        down = {"service": "click2dial", "customer": "acme", "location": "acme-ams"}
        assert sample(text, "ctiwatch_target_up", **down, user="alice", source="central") == 0
        assert sample(text, "ctiwatch_probe_success", **down, user="alice", source="central") == 0
        fine = {"service": "click2dial", "customer": "globex", "user": "frank"}
        assert sample(text, "ctiwatch_target_up", **fine, source="central") == 1
        deadline = sample(
            text, "ctiwatch_incident_sla_deadline_seconds", incident="1", priority="1"
        )
        assert deadline is not None
        assert sample(text, "ctiwatch_probe_duration_seconds_count", service="crm") is not None
        assert sample(text, "ctiwatch_ingestion_lag_seconds_count", source="agent") == 2
        assert sample(text, "ctiwatch_leader") == 1
        assert sample(text, "ctiwatch_mqtt_connected") == 1
        assert sample(text, "process_start_time_seconds") is not None
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _true(value: bool) -> bool:
    return value
