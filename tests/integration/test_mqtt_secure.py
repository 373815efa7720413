"""MQTT secured, for real: the shipped ``docker/mosquitto-secure.conf`` and ``docker/mosquitto.acl``
run by a Mosquitto of the test's own on a free port, with test material made by
``scripts/mqtt-secure.sh`` in the test's temporary folder (a CA, a server certificate for
127.0.0.1, a password file). The machine's broker is never touched.

Proved here: an agent logged in as itself over TLS has its results stored by ``ctiwatch run``;
a wrong password is refused with one clear ERROR line while the agent keeps its results buffered
(and delivers them once the password is right); a client publishing under another agent's name is
refused by the broker's ACL and nothing of it is stored (a payload naming another agent on the
client's own topic is rejected by ingestion); plain TCP to the TLS port, and TLS without the CA,
fail with a line naming the setting to fix.

Waits are bounded (``asyncio.timeout``) and wait for events or poll what real I/O produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
import yaml
from aiomqtt.client import ProtocolVersion
from ci import unavailable
from private_broker import HOST, MOSQUITTO, PrivateBroker
from running_app import WAIT_SECONDS, api_headers, free_ports, start, until

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.app import Ctiwatch
from ctiwatch.clock import RealClock
from ctiwatch.config import MqttConfig, MqttTlsConfig, config_from_data, load_config
from ctiwatch.mqtt.acl import mosquitto_acl
from ctiwatch.mqtt.agent import AgentPublisher
from ctiwatch.mqtt.backoff import Backoff
from ctiwatch.mqtt.buffer import ResultBuffer
from ctiwatch.mqtt.ingest import AgentState, Ingestion
from ctiwatch.mqtt.schema import encode_results, encode_status
from ctiwatch.mqtt.topics import Topics

pytestmark = pytest.mark.mqtt

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "mqtt-secure.sh"
SHIPPED_CONF = ROOT / "docker" / "mosquitto-secure.conf"
# Test material, made for each test and thrown away with its folder.
PASSWORDS = {
    "ctiwatch": "service-test-password",
    "ams-1": "ams-test-password",
    "rtm-1": "rtm-test-password",
}
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
TOPOLOGY = config_from_data(
    {
        "topology": {
            "customers": [
                {
                    "id": "acme",
                    "locations": [
                        {"id": "ams", "users": ["alice"]},
                        {"id": "rtm", "users": ["carol"]},
                    ],
                }
            ]
        }
    }
).topology


@dataclass
class SecureBroker:
    broker: PrivateBroker
    material: Path
    prefix: str
    group: str

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def mqtt(
        self, username: str | None, password: str | None, *, tls: bool = True, ca: bool = True
    ) -> MqttConfig:
        return MqttConfig(
            enabled=True,
            host=HOST,
            port=self.port,
            username=username,
            password=password,
            tls=MqttTlsConfig(enabled=tls, ca_file=str(self.material / "ca.pem") if ca else None),
            topic_prefix=self.prefix,
            shared_group=self.group,
        )


def secure_conf(workdir: Path, material: Path, acl: Path) -> str:
    """The shipped configuration with the test's paths and port; every replaced line must be
    there, so the test follows the shipped file."""
    text = SHIPPED_CONF.read_text()
    replacements = {
        "password_file /mosquitto/config/passwd": f"password_file {material}/passwd",
        "acl_file /mosquitto/acl/acl": f"acl_file {acl}",
        "listener 8883 0.0.0.0": "listener {port} 127.0.0.1",
        "cafile /mosquitto/certs/ca.pem": f"cafile {material}/ca.pem",
        "certfile /mosquitto/certs/server.pem": f"certfile {material}/server.pem",
        "keyfile /mosquitto/certs/server.key": f"keyfile {material}/server.key",
        "persistence true": "persistence false",
        "persistence_location /mosquitto/data/": "",
        "log_dest stdout": f"log_dest file {workdir}/mosquitto.log",
    }
    for shipped, ours in replacements.items():
        assert shipped in text, f"{SHIPPED_CONF.name} no longer has {shipped!r}"
        text = text.replace(shipped, ours)
    # Started as root, Mosquitto would become user "mosquitto", who cannot read the test's keys.
    return f"user {getpass.getuser()}\n{text}"


def make_material(folder: Path, logins: list[str]) -> None:
    """``scripts/mqtt-secure.sh FOLDER USER=PASSWORD...``: a CA, a server certificate for
    127.0.0.1 and localhost, a password file."""
    subprocess.run(["bash", str(SCRIPT), str(folder), *logins], check=True, capture_output=True)


@pytest.fixture
async def secure_broker(tmp_path: Path) -> AsyncIterator[SecureBroker]:
    for tool in (MOSQUITTO, "openssl", "mosquitto_passwd"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")
    material = tmp_path / "material"
    logins = [f"{user}={password}" for user, password in PASSWORDS.items()]
    make_material(material, logins)
    tag = uuid.uuid4().hex[:12]
    prefix = f"ctiwatch-test/{tag}/v1"
    acl = tmp_path / "acl"
    # The ACL for the test's prefix, made as `ctiwatch mqtt acl` makes it from mqtt.topic_prefix.
    acl.write_text(mosquitto_acl(Topics(prefix)))
    broker = PrivateBroker(tmp_path, secure_conf(tmp_path, material, acl))
    await broker.start()
    try:
        yield SecureBroker(broker, material, prefix, f"g{tag}")
    finally:
        await broker.kill()


def results(first: int, count: int, agent: str = "ams-1") -> list[ProbeResult]:
    return [
        ProbeResult(
            result_id=f"r{n:05d}",
            target=TargetKey(Service.CLICK2DIAL, "acme", "ams", "alice"),
            at=T0 + timedelta(seconds=n),
            ok=True,
            recognised=None,
            latency_ms=12.0,
            status=200,
            evidence=f"probe {n}",
            source=Source.AGENT,
            attempts=1,
            source_id=agent,
        )
        for n in range(first, first + count)
    ]


class Collector:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.agent_states: list[AgentState] = []
        self.changed = asyncio.Event()

    async def sink(self, batch: list[ProbeResult]) -> None:
        self.results.extend(batch)
        self.changed.set()

    async def on_agent_change(self, state: AgentState) -> None:
        self.agent_states.append(state)
        self.changed.set()

    async def wait_for_results(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.results) < count:
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running(
    ingestion: Ingestion | None = None, publisher: AgentPublisher | None = None
) -> AsyncIterator[None]:
    """Run them; stop them on the way out (their errors are raised: a crash fails the test)."""
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


async def logged(
    caplog: pytest.LogCaptureFixture, logger: str, message: str | None = None, error: str = ""
) -> logging.LogRecord:
    """The first record ``logger`` logged with ``message`` (any, if ``None``) and an ``error``
    field starting with ``error`` (polled: the clients log from their own tasks)."""
    async with asyncio.timeout(20):
        while True:
            for record in caplog.records:
                if (
                    record.name == logger
                    and message in (None, record.getMessage())
                    and str(record.__dict__.get("error", "")).startswith(error)
                ):
                    return record
            await asyncio.sleep(0.02)  # polling what the running clients log


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.5)


class AckRecorder(aiomqtt.Client):
    """An MQTT 5 client that keeps the reason code of every PUBACK."""

    acks: list[int]

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        self.acks.append(reason_code.value)
        super()._on_publish(client, userdata, mid, reason_code, properties)


# --- end to end: ctiwatch run and ctiwatch agent over TLS with their logins ----------------------


async def test_an_agent_logged_in_as_itself_over_tls_has_its_results_stored(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    web, simulator, twilio, smtp = free_ports(4)
    ca_file = str(secure_broker.material / "ca.pem")
    mqtt = {
        "enabled": True,
        "host": HOST,
        "port": secure_broker.port,
        "topic_prefix": secure_broker.prefix,
        "tls": {"enabled": True, "ca_file": ca_file},
    }
    topology = {
        "customers": [{"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice"]}]}]
    }
    central_file = tmp_path / "central.yaml"
    central_file.write_text(
        yaml.safe_dump(
            {
                "topology": topology,
                "probes": {
                    "base_url": f"http://{HOST}:{simulator}",
                    "interval": "2s",
                    "timeout": "1s",
                    "retries": 0,
                },
                "alerting": {
                    "fakes": True,
                    "twilio": {
                        "base_url": f"http://{HOST}:{twilio}",
                        "webhook_base_url": f"http://{HOST}:{web}",
                    },
                    "smtp": {"host": HOST, "port": smtp},
                },
                "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/ctiwatch.db"},
                "mqtt": {
                    **mqtt,
                    "username": "ctiwatch",
                    "password": "${CTIWATCH_MQTT_PASSWORD}",
                    "shared_group": secure_broker.group,
                },
                "web": {"host": HOST, "port": web},
                "simulator": {"enabled": True, "host": HOST, "port": simulator},
            }
        )
    )
    agent_file = tmp_path / "agent.yaml"
    agent_file.write_text(
        yaml.safe_dump(
            {
                "topology": topology,
                "agent": {
                    "name": "ams-1",
                    "buffer_path": str(tmp_path / "agent-buffer.db"),
                    "batch_interval": "100ms",
                },
                "probes": {
                    "base_url": f"http://{HOST}:{simulator}",
                    "interval": "1s",
                    "timeout": "1s",
                    "retries": 0,
                },
                # No username: an agent logs in as its own name.
                "mqtt": {**mqtt, "password": "${MQTT_PASSWORD}"},
                "simulator": {"enabled": False},
                "logging": {"level": "WARNING"},
            }
        )
    )
    config = load_config(central_file, {"CTIWATCH_MQTT_PASSWORD": PASSWORDS["ctiwatch"]})
    stop = asyncio.Event()
    app = Ctiwatch(config)
    task = await start(app, stop)
    agent: asyncio.subprocess.Process | None = None
    try:
        assert app.ingestion is not None and app.store is not None
        async with asyncio.timeout(WAIT_SECONDS):
            await app.ingestion.subscribed.wait()
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ctiwatch",
            "agent",
            "--config",
            str(agent_file),
            cwd=ROOT,
            env={**os.environ, "MQTT_PASSWORD": PASSWORDS["ams-1"]},
            stdout=asyncio.subprocess.DEVNULL,
        )
        store, ingestion = app.store, app.ingestion
        alice = TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", "alice")
        now = app.clock.now()

        async def agent_results_stored() -> bool:
            history = await store.results.history(
                alice, now - timedelta(minutes=5), now + timedelta(minutes=5)
            )
            return any(r.source is Source.AGENT for r in history)

        await until(agent_results_stored, "the agent's results in the store")
        assert ingestion.results_from("ams-1") >= 1
        assert ingestion.counts.rejected == {}
        async with (
            aiohttp.ClientSession(headers=await api_headers(app)) as http,
            http.get(f"{app.web_url}/api/v1/status") as response,
        ):
            status = await response.json()
        assert status["mqtt"] == {
            "broker": f"{HOST}:{secure_broker.port}",
            "state": "connected",
            "detail": "",
        }
    finally:
        if agent is not None:
            with contextlib.suppress(ProcessLookupError):
                agent.terminate()
            await agent.wait()
        stop.set()
        await task


# --- a wrong password ----------------------------------------------------------------------------


async def test_a_wrong_password_is_refused_with_an_error_and_the_agent_keeps_its_results(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ctiwatch.mqtt")
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        wrong = AgentPublisher(
            secure_broker.mqtt(None, "not-the-password"),
            "ams-1",
            buffer,
            clock=RealClock(),
            batch_interval=0.05,
            backoff=fast_backoff(),
        )
        async with running(publisher=wrong):
            await wrong.submit(results(0, 5))
            record = await logged(
                caplog, "ctiwatch.mqtt.agent", "broker refused the agent, results stay buffered"
            )
            async with asyncio.timeout(20):
                while wrong.refusals < 3:  # noqa: ASYNC110 - it keeps trying, with backoff
                    await asyncio.sleep(0.02)  # polling the refusals of the running publisher
            assert not wrong.connected.is_set()
            assert (wrong.buffered, wrong.published) == (5, 0)
        assert record.levelno == logging.ERROR
        assert record.__dict__["error"] == (
            "the broker refused the login of user 'ams-1' ([code:135] Not authorized): "
            "check mqtt.username and mqtt.password (and the broker's password file and ACL)"
        )
        assert record.__dict__["buffered"] == 5

        # The password put right: what waited on disk reaches ctiwatch.
        collected = Collector()
        ingestion = Ingestion(
            secure_broker.mqtt("ctiwatch", PASSWORDS["ctiwatch"]),
            TOPOLOGY,
            collected.sink,
            clock=RealClock(),
        )
        right = AgentPublisher(
            secure_broker.mqtt(None, PASSWORDS["ams-1"]),
            "ams-1",
            buffer,
            clock=RealClock(),
            batch_interval=0.05,
            backoff=fast_backoff(),
        )
        async with running(ingestion):
            async with asyncio.timeout(10):
                await ingestion.subscribed.wait()
            async with running(publisher=right):
                await collected.wait_for_results(5)
        assert [r.result_id for r in collected.results] == [f"r{n:05d}" for n in range(5)]
        assert len(buffer) == 0


async def test_ingestion_with_a_wrong_password_logs_one_error_naming_the_settings(
    secure_broker: SecureBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ctiwatch.mqtt")
    collected = Collector()
    ingestion = Ingestion(
        secure_broker.mqtt("ctiwatch", "not-the-password"),
        TOPOLOGY,
        collected.sink,
        clock=RealClock(),
        backoff=fast_backoff(),
    )
    async with running(ingestion):
        record = await logged(
            caplog, "ctiwatch.mqtt.ingest", "mqtt broker refused ingestion; retrying with backoff"
        )
        assert not ingestion.subscribed.is_set()
    assert record.levelno == logging.ERROR
    assert record.__dict__["error"].startswith(
        "the broker refused the login of user 'ctiwatch' ([code:135] Not authorized)"
    )
    assert ingestion.broker_problem == record.__dict__["error"]


# --- the ACL: an agent publishes under its own name only ----------------------------------------


async def test_a_client_publishing_under_another_agents_name_is_refused_and_nothing_is_stored(
    secure_broker: SecureBroker,
) -> None:
    topics = secure_broker.topics
    collected = Collector()
    ingestion = Ingestion(
        secure_broker.mqtt("ctiwatch", PASSWORDS["ctiwatch"]),
        TOPOLOGY,
        collected.sink,
        clock=RealClock(),
        on_agent_change=collected.on_agent_change,
    )
    async with running(ingestion):
        async with asyncio.timeout(10):
            await ingestion.subscribed.wait()
        forger = AckRecorder(
            HOST,
            secure_broker.port,
            username="ams-1",
            password=PASSWORDS["ams-1"],
            tls_context=MqttTlsConfig(
                enabled=True, ca_file=str(secure_broker.material / "ca.pem")
            ).context(),
            protocol=ProtocolVersion.V5,
        )
        forger.acks = []
        async with forger:
            # Under rtm-1's name: the broker refuses both (the ACL's %u is ams-1).
            await forger.publish(
                topics.results("rtm-1"), encode_results("rtm-1", T0, results(0, 3, "rtm-1")), qos=1
            )
            await forger.publish(
                topics.agent_status("rtm-1"), encode_status("rtm-1", True, T0), qos=1, retain=True
            )
            # On its own topic, but the payload names rtm-1: ingestion rejects it.
            await forger.publish(
                topics.results("ams-1"), encode_results("rtm-1", T0, results(10, 2)), qos=1
            )
            # Its own results, after the others on the same topic.
            await forger.publish(
                topics.results("ams-1"), encode_results("ams-1", T0, results(20, 2)), qos=1
            )
        await collected.wait_for_results(2)

    not_authorized, success = 0x87, 0x00
    assert forger.acks == [not_authorized, not_authorized, success, success]
    assert [r.result_id for r in collected.results] == ["r00020", "r00021"]
    assert ingestion.counts.rejected == {"agent_mismatch": 1}
    assert ingestion.results_from("rtm-1") == 0
    assert "rtm-1" not in {state.name for state in collected.agent_states}


# --- the wrong transport -------------------------------------------------------------------------


async def test_plain_tcp_to_the_tls_port_fails_with_a_line_saying_to_enable_tls(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ctiwatch.mqtt")
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        publisher = AgentPublisher(
            secure_broker.mqtt(None, PASSWORDS["ams-1"], tls=False),
            "ams-1",
            buffer,
            clock=RealClock(),
            publish_timeout=1.0,
            backoff=fast_backoff(),
        )
        async with running(publisher=publisher):
            await publisher.submit(results(0, 3))
            record = await logged(
                caplog, "ctiwatch.mqtt.agent", "broker unavailable, results stay buffered"
            )
        assert publisher.buffered == 3
    assert record.__dict__["error"] == (
        "Operation timed out: no MQTT answer from the broker; "
        "if mqtt.port is a TLS listener, set mqtt.tls.enabled"
    )


async def test_tls_without_the_brokers_ca_is_refused_naming_the_ca_file(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ctiwatch.mqtt")
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        publisher = AgentPublisher(
            secure_broker.mqtt(None, PASSWORDS["ams-1"], ca=False),  # the system's CAs only
            "ams-1",
            buffer,
            clock=RealClock(),
            backoff=fast_backoff(),
        )
        async with running(publisher=publisher):
            record = await logged(
                caplog, "ctiwatch.mqtt.agent", "broker refused the agent, results stay buffered"
            )
    assert record.levelno == logging.ERROR
    error = record.__dict__["error"]
    assert error.startswith("TLS: the broker's certificate does not verify (")
    assert "CERTIFICATE_VERIFY_FAILED" in error
    assert error.endswith("check mqtt.tls.ca_file and that the certificate names mqtt.host")


async def test_tls_to_a_plain_port_says_the_port_does_not_answer_tls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if shutil.which(MOSQUITTO) is None:
        unavailable(f"{MOSQUITTO} is not installed")
    caplog.set_level(logging.WARNING, logger="ctiwatch.mqtt")
    plain = PrivateBroker(tmp_path)
    await plain.start()
    try:
        ca = tmp_path / "material"
        make_material(ca, [])
        mqtt = MqttConfig(
            enabled=True,
            port=plain.port,
            tls=MqttTlsConfig(enabled=True, ca_file=str(ca / "ca.pem")),
        )
        async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
            publisher = AgentPublisher(
                mqtt, "ams-1", buffer, clock=RealClock(), backoff=fast_backoff()
            )
            async with running(publisher=publisher):
                # A reset connection may also be a broker going away: a warning, not an error.
                record = await logged(
                    caplog, "ctiwatch.mqtt.agent", error="TLS: the broker's port does not answer"
                )
    finally:
        await plain.kill()
    assert record.__dict__["error"].startswith("TLS: the broker's port does not answer TLS (")
    assert record.__dict__["error"].endswith(
        "mqtt.tls.enabled is set; is mqtt.port its TLS listener?"
    )
