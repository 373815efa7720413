"""``ctiwatch run`` killed with SIGKILL, as a real process: once while probes are in flight, once
just as an incident is being opened (its "incident opened" log line: the step has committed, the
pages are in the outbox, maybe some already sent). Each time it is started again on the same
database.

The CloudCTI simulator, the fake Twilio and the fake SMTP server run here, in the test, so they
outlive the process (its own fakes would die with it): the fault stays injected across restarts
and the fakes see every delivery of every life. Afterwards: exactly one incident, opened when the
first life's successor opened it (not again after the restart), every page of it delivered
exactly once, and what the running service shows equal to what the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from running_app import HOST, WAIT_SECONDS, free_ports, until
from sqlalchemy.exc import DBAPIError

from alerting.channels.email import message_id
from ctiwatch.accounts import Accounts
from ctiwatch.clock import RealClock
from ctiwatch.config import Config
from ctiwatch.fakes import FakeSmtp, FakeTwilio
from ctiwatch.simulator import SimulatorCore, make_app
from ctiwatch.storage import Store

ROOT = Path(__file__).resolve().parent.parent.parent
SID = "AC" + "4" * 32
TOKEN = "crash-run-token"
FROM = "+3197010000004"
ONCALL = "+31611111111"
NODE = "crash-node"
TOPOLOGY = {
    "customers": [
        {"id": "acme", "name": "ACME B.V.",
         "locations": [{"id": "acme-ams", "users": ["alice", "bob"]}]},
        {"id": "globex", "name": "Globex", "locations": [{"id": "globex-utr", "users": ["frank"]}]},
    ]
}  # fmt: skip


class Life:
    """One ``ctiwatch run`` process and the JSON log lines it wrote so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def said(self, text: str) -> bool:
        return any(text in str(line.get("msg", "")) for line in self.lines)

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._reader

    async def stop(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_SECONDS):
            code = await self.process.wait()
        await self._reader
        return code


async def spawn_run(config_file: Path) -> asyncio.subprocess.Process:
    """``ctiwatch run --config config_file`` as a process of its own, JSON log on stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctiwatch", "run", "--config", str(config_file),
        cwd=ROOT, env={**os.environ, "CTIWATCH_LOG_LEVEL": "INFO"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def start_life(config_file: Path) -> Life:
    process = await spawn_run(config_file)
    life = Life(process)

    async def ready() -> bool:
        if process.returncode is not None:
            pytest.fail(f"ctiwatch run ended with {process.returncode}: {life.lines[-5:]}")
        return life.said("status page http")  # the start-up line, not a migration's

    await until(ready, "ctiwatch run ready")
    return life


@pytest.fixture
async def outside() -> AsyncIterator[tuple[FakeTwilio, FakeSmtp, str]]:
    """The fakes and the simulator, outliving every life of the process."""
    simulator = SimulatorCore.from_config(Config.model_validate({"topology": TOPOLOGY}))
    runner = web.AppRunner(make_app(simulator, RealClock(), random.Random(7)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        async with (
            FakeTwilio(account_sid=SID, auth_token=TOKEN, from_number=FROM,
                       webhook_base_url="http://127.0.0.1:9") as twilio,
            FakeSmtp(port=0) as smtp,
        ):  # fmt: skip
            yield twilio, smtp, f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


def write_config(tmp_path: Path, storage_url: str, twilio: FakeTwilio, smtp: FakeSmtp,
                 simulator: str) -> tuple[Path, str]:  # fmt: skip
    [web_port] = free_ports(1)
    data = {
        "topology": TOPOLOGY,
        "probes": {"base_url": simulator, "interval": "1s", "timeout": "0.8s", "retries": 0},
        "classification": {"failed_rounds": 3, "recovery_rounds": 5},
        "alerting": {
            "oncall": [ONCALL],
            "escalation": [{"name": "second line", "after": "1h", "numbers": ["+31622222222"]}],
            "fakes": False,
            "node": NODE,
            "twilio": {"account_sid": SID, "auth_token": TOKEN, "from_number": FROM,
                       "base_url": twilio.url, "webhook_base_url": f"http://{HOST}:{web_port}"},
            "smtp": {"host": HOST, "port": smtp.port},
        },
        "storage": {"url": storage_url},
        "mqtt": {"enabled": False},
        "simulator": {"enabled": False},
        "web": {"host": HOST, "port": web_port},
        "logging": {"format": "json"},
    }  # fmt: skip
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, f"http://{HOST}:{web_port}"


async def add_fault(simulator: str, fault: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{simulator}/admin/faults", json=fault) as response,
    ):
        assert response.status == 201, await response.text()


async def failed_rounds(storage_url: str, after: datetime | None = None) -> int:
    """Failed Click2Dial results of acme-ams stored (latest per user), after ``after``."""
    async with Store.open(storage_url, migrate=False) as store:
        try:
            latest = await store.results.latest("acme", "acme-ams")
        except DBAPIError:  # the process has not created its tables yet
            return 0
    return sum(
        1
        for r in latest
        if r.target.service.value == "click2dial" and not r.ok and (after is None or r.at > after)
    )


async def test_killed_while_probing_and_while_opening_an_incident_it_opens_one_and_pages_once(
    tmp_path: Path, storage_url: str, outside: tuple[FakeTwilio, FakeSmtp, str]
) -> None:
    twilio, smtp, simulator = outside
    config_file, web_url = write_config(tmp_path, storage_url, twilio, smtp, simulator)
    # Globex's CRM answers slowly: some probe is always in flight.
    await add_fault(simulator, {"service": "crm", "customer": "globex", "kind": "slow",
                                "latency": 0.6})  # fmt: skip

    # Life 1: killed while probing, with the outage already failing rounds.
    life = await start_life(config_file)
    try:
        await add_fault(simulator, {"service": "click2dial", "customer": "acme",
                                    "location": "acme-ams", "kind": "outage"})  # fmt: skip

        async def one_failed_round() -> bool:
            return await failed_rounds(storage_url) > 0

        await until(one_failed_round, "a failed round stored")
    finally:
        await life.kill()
    assert life.process.returncode == -signal.SIGKILL
    assert not life.said("incident opened")

    # Life 2: killed the moment it says it opened the incident.
    life = await start_life(config_file)
    try:

        async def opening() -> bool:
            return life.said("incident opened")

        await until(opening, "the incident opened")
    finally:
        await life.kill()
    async with Store.open(storage_url, migrate=False) as store:
        [record] = await store.incidents.list()
        opened_at = record.opened_at
        queued = {m.idempotency_key: m for m in await store.outbox.list(limit=1000)}
    assert record.number == 1 and queued  # committed with its pages

    # Life 3: sends what is left at once, opens nothing new while the outage holds.
    life = await start_life(config_file)
    later = datetime.now(UTC) + timedelta(seconds=4)  # rounds enough to open a second one
    try:

        async def all_sent() -> bool:
            async with Store.open(storage_url, migrate=False) as store:
                rows = await store.outbox.list(limit=1000)
            return bool(rows) and all(r.status == "sent" for r in rows)

        await until(all_sent, "every page sent")

        async def more_rounds() -> bool:
            return await failed_rounds(storage_url, after=later) > 0

        await until(more_rounds, "rounds after the restart")
        async with Store.open(storage_url, migrate=False) as store:
            secret, _ = await Accounts(store, RealClock()).create_token("test", "admin", by="test")
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(f"{web_url}/api/v1/incidents/1") as response:
                shown = await response.json()
            async with http.get(f"{web_url}/api/v1/incidents/2") as response:
                assert response.status == 404
            async with http.get(f"{web_url}/metrics") as response:
                metrics = await response.text()
    finally:
        code = await life.stop()
    assert code == 0

    async with Store.open(storage_url, migrate=False) as store:
        records = await store.incidents.list()
        rows = await store.outbox.list(limit=1000)
    assert [(r.number, r.customer, r.status) for r in records] == [(1, "acme", "open")]
    assert records[0].opened_at == opened_at  # the SLA clocks run on from the opening
    assert {r.idempotency_key for r in rows} == set(queued)  # nothing queued again
    assert all(r.claimed_by is None or r.claimed_by.startswith(f"{NODE}/") for r in rows)
    # Every page delivered exactly once over the lives.
    by_message_id = {message_id(r.idempotency_key): r.idempotency_key for r in rows}
    delivered = Counter(
        [str(m.idempotency_key) for m in twilio.messages]
        + [str(c.idempotency_key) for c in twilio.calls]
        + [by_message_id.get(mail.message_id, mail.message_id) for mail in smtp.messages]
    )
    assert delivered == Counter({r.idempotency_key: 1 for r in rows})
    # What the running service showed is what the database holds.
    assert shown["status"] == "open" and shown["number"] == 1
    assert datetime.fromisoformat(shown["opened_at"]) == opened_at
    assert int(shown["priority"]) == records[0].priority
    assert 'ctiwatch_outbox_failed_total{cause="undelivered",channel="sms"} 0.0' in metrics
