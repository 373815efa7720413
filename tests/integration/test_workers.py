"""Several workers, one truth: three ``ctiwatch run`` processes on one PostgreSQL database and
the machine's Mosquitto (ingestion shared between them), the active monitor killed with SIGKILL
while its incident is open and an escalation page is still due.

The CloudCTI simulator, the fake Twilio and the fake SMTP server run here, in the test, so they
outlive the workers and see every delivery. The lease is shortened by configuration (3 s,
renewed every second). Afterwards: one incident, every page delivered exactly once, another
worker took over within 30 s (measured, and printed) and continued the incident's SLA clocks
(the same deadlines) and its escalation (the second line is paged by the new leader), and every
worker's API shows the incident.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from running_app import HOST, broker_or_skip, free_ports, until
from test_app_crash import (  # noqa: F401 - outside is a fixture
    SID,
    TOKEN,
    TOPOLOGY,
    Life,
    add_fault,
    outside,
    spawn_run,
)

from alerting.channels.email import message_id
from classifier.observation import CALL_SERVICES, CENTRAL, TargetKey
from ctiwatch.accounts import Accounts
from ctiwatch.clock import RealClock
from ctiwatch.fakes import FakeSmtp, FakeTwilio
from ctiwatch.membership import owner
from ctiwatch.storage import Store

FROM = "+3197010000004"
ONCALL = "+31611111111"
SECOND_LINE = "+31622222222"
ESCALATE_AFTER = 14  # seconds after the opening: due after the leader is killed

pytestmark = pytest.mark.postgres


class Worker(Life):
    """One worker: a ``ctiwatch run`` process, its name and where its web answers."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, web_url: str) -> None:
        super().__init__(process)
        self.name = name
        self.web_url = web_url


def worker_config(
    tmp_path: Path, name: str, storage_url: str, twilio: FakeTwilio, smtp: FakeSmtp,
    simulator: str, prefix: str,
) -> tuple[Path, str]:  # fmt: skip
    [web_port] = free_ports(1)
    data = {
        "topology": TOPOLOGY,
        "probes": {"base_url": simulator, "interval": "1s", "timeout": "0.8s", "retries": 0},
        "classification": {"failed_rounds": 3, "recovery_rounds": 5},
        "alerting": {
            "oncall": [ONCALL],
            "escalation": [{"name": "second line", "after": f"{ESCALATE_AFTER}s",
                            "numbers": [SECOND_LINE]}],
            "fakes": False,
            "node": name,
            "twilio": {"account_sid": SID, "auth_token": TOKEN, "from_number": FROM,
                       "base_url": twilio.url, "webhook_base_url": f"http://{HOST}:{web_port}"},
            "smtp": {"host": HOST, "port": smtp.port},
        },
        "storage": {"url": storage_url},
        "mqtt": {"enabled": True, "host": HOST, "port": 1883, "topic_prefix": prefix,
                 "shared_group": prefix.replace("/", "-")},
        "workers": {"lease": "3s", "renew_every": "1s", "poll": "0.5s"},
        "simulator": {"enabled": False},
        "web": {"host": HOST, "port": web_port},
        "logging": {"format": "json"},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, f"http://{HOST}:{web_port}"


async def start_worker(name: str, config_file: Path, web_url: str) -> Worker:
    return Worker(name, await spawn_run(config_file), web_url)


async def start_workers(
    names: list[str],
    tmp_path: Path,
    url: str,
    fakes: tuple[FakeTwilio, FakeSmtp, str],
    prefix: str,
) -> list[Worker]:
    """One ``ctiwatch run`` per name on database ``url`` and broker topic ``prefix``, with the
    fake Twilio, SMTP and simulator of ``fakes``."""
    twilio, smtp, simulator = fakes
    workers: list[Worker] = []
    for name in names:
        config_file, web_url = worker_config(tmp_path, name, url, twilio, smtp, simulator, prefix)
        workers.append(await start_worker(name, config_file, web_url))
    return workers


async def all_ready(workers: list[Worker]) -> None:
    """Until every worker serves its status page (a worker that ended fails the test)."""

    async def ready() -> bool:
        for w in workers:
            if w.process.returncode is not None:
                pytest.fail(f"{w.name} ended with {w.process.returncode}: {w.lines[-5:]}")
        return all(w.said("status page http") for w in workers)

    await until(ready, f"{len(workers)} workers ready")


@pytest.fixture
async def workers_database(pg_database_factory: Any) -> AsyncIterator[str]:
    broker_or_skip()
    url: str = await pg_database_factory()
    async with Store.open(url):  # migrated once, before three processes start on it
        pass
    yield url


async def test_three_workers_one_killed_while_leading_one_incident_pages_once_takeover_in_30s(
    tmp_path: Path,
    workers_database: str,
    outside: tuple[FakeTwilio, FakeSmtp, str],  # noqa: F811 - test_app_crash's fixture
) -> None:
    twilio, smtp, simulator = outside
    url = workers_database
    prefix = f"ctiwatch-test-{uuid.uuid4().hex[:8]}/v1"
    names = [f"worker-{i}" for i in (1, 2, 3)]
    workers = await start_workers(names, tmp_path, url, outside, prefix)
    try:
        await all_ready(workers)
        async with aiohttp.ClientSession() as http:
            roles = [await role(http, w) for w in workers]
        assert sorted(r.split(";")[0] for r in roles) == ["follower", "follower", "leader"]
        leader = workers[[r.startswith("leader") for r in roles].index(True)]

        await add_fault(simulator, {"service": "click2dial", "customer": "acme",
                                    "location": "acme-ams", "kind": "outage"})  # fmt: skip

        async def opened_and_paged() -> bool:
            async with Store.open(url, migrate=False) as store:
                incidents = await store.incidents.list()
                rows = await store.outbox.list(limit=1000)
            return (
                [int(i.priority) for i in incidents] == [1]  # the whole location: P1
                and bool(rows)
                and all(r.status == "sent" for r in rows)
            )

        await until(opened_and_paged, "the P1 incident opened and its first pages sent")
        async with Store.open(url, migrate=False) as store:
            [before] = await store.incidents.list()
            lease = await store.leader.get()
        assert lease is not None and lease.holder.startswith(f"{leader.name}/")
        assert not any(m.to == SECOND_LINE for m in twilio.messages)  # still due

        # The active monitor dies while the incident is open and its escalation is due.
        await leader.kill()
        killed = time.monotonic()
        killed_at = datetime.now(UTC)
        survivors = [w for w in workers if w is not leader]

        async def taken_over() -> bool:
            async with Store.open(url, migrate=False) as store:
                now = await store.leader.get()
            return now is not None and now.generation > lease.generation

        await until(taken_over, "another worker taking over")
        takeover_s = time.monotonic() - killed
        print(f"takeover after SIGKILL: {takeover_s:.1f}s (lease 3s, renewed every 1s)")
        assert takeover_s < 30

        async def escalated() -> bool:
            return any(m.to == SECOND_LINE for m in twilio.messages)

        await until(escalated, "the new leader paging the second line")

        async def all_sent() -> bool:
            async with Store.open(url, migrate=False) as store:
                rows = await store.outbox.list(limit=1000)
            return all(r.status == "sent" for r in rows)

        await until(all_sent, "every page sent")
        async with Store.open(url, migrate=False) as store:
            secret, _ = await Accounts(store, RealClock()).create_token("test", "admin", by="test")
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            roles = [await role(http, w) for w in survivors]
            shown = []
            for w in survivors:
                async with http.get(f"{w.web_url}/api/v1/incidents/1") as response:
                    assert response.status == 200, await response.text()
                    shown.append(await response.json())
        assert sorted(r.split(";")[0] for r in roles) == ["follower", "leader"]
    finally:
        codes = [await w.stop() for w in workers if w.process.returncode is None]
        for w in workers:
            if w.process.returncode is None:
                await w.kill()
    assert codes == [0, 0]

    async with Store.open(url, migrate=False) as store:
        records = await store.incidents.list()
        rows = await store.outbox.list(limit=1000)
        timeline = await store.incidents.timeline(1)
        final = await store.leader.get()
    assert [(r.number, r.customer, r.status) for r in records] == [(1, "acme", "open")]
    after = records[0]
    # The SLA clocks ran on from the opening: the same deadlines, kept by the new leader.
    assert after.opened_at == before.opened_at
    assert (after.response_due, after.repair_due) == (before.response_due, before.repair_due)
    assert after.response_due is not None
    # The escalation went on: the second line was paged after the old leader died.
    escalations = [e for e in timeline if e.kind == "escalated"]
    assert len(escalations) == 1 and escalations[0].at > killed_at
    assert final is not None and not final.holder.startswith(f"{leader.name}/")
    # Every page delivered exactly once, across the workers' lives.
    by_message_id = {message_id(r.idempotency_key): r.idempotency_key for r in rows}
    delivered = Counter(
        [str(m.idempotency_key) for m in twilio.messages]
        + [str(c.idempotency_key) for c in twilio.calls]
        + [by_message_id.get(mail.message_id, mail.message_id) for mail in smtp.messages]
    )
    assert delivered == Counter({r.idempotency_key: 1 for r in rows})
    assert any(r.recipient == SECOND_LINE for r in rows)
    # Every surviving worker's API showed the incident as stored.
    for incident in shown:
        assert incident["number"] == 1 and incident["status"] == "open"
        assert datetime.fromisoformat(incident["opened_at"]) == before.opened_at


def sees_workers(worker: Worker, count: int) -> bool:
    """Whether the worker's last word on the members is that ``count`` workers are alive."""
    said = [str(line.get("msg", "")) for line in worker.lines]
    last = [m for m in said if m.startswith("probing ") and " workers)" in m]
    return bool(last) and last[-1].endswith(f"({count} workers)")


async def central_rounds(url: str, after: datetime) -> Counter[tuple[TargetKey, datetime]]:
    """How many central results each (target, scheduled instant) has from ``after`` on."""
    async with Store.open(url, migrate=False) as store:
        rows = await store.results.stored_after(0, since=after, limit=100_000)
    return Counter((r.target, r.at) for _, r in rows if r.source_id == CENTRAL)


async def user_states(http: aiohttp.ClientSession, worker: Worker) -> dict[tuple[str, str], str]:
    async with http.get(f"{worker.web_url}/api/v1/status") as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    return {(u["user"], u["service"]): u["state"] for u in body["users"]}


async def test_three_workers_probe_each_target_once_per_round_and_take_over_a_killed_ones_share(
    tmp_path: Path,
    workers_database: str,
    outside: tuple[FakeTwilio, FakeSmtp, str],  # noqa: F811 - test_app_crash's fixture
) -> None:
    """Probing spread over the live workers: each target is probed once per interval, by one
    worker, whatever the number of workers; a killed worker's targets are probed by the others
    once its heartbeat has run out (lease 3 s); every worker's status shows every target."""
    url = workers_database
    prefix = f"ctiwatch-test-{uuid.uuid4().hex[:8]}/v1"
    names = [f"worker-{i}" for i in (1, 2, 3)]
    workers = await start_workers(names, tmp_path, url, outside, prefix)
    keys = [
        TargetKey(service, customer["id"], location["id"], user)
        for customer in TOPOLOGY["customers"]
        for location in customer["locations"]
        for user in location["users"]
        for service in CALL_SERVICES
    ]
    try:
        async with Store.open(url, migrate=False) as store:
            secret, _ = await Accounts(store, RealClock()).create_token("test", "admin", by="test")
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(headers=headers) as http:

            async def all_see_three() -> bool:
                for w in workers:
                    if w.process.returncode is not None:
                        pytest.fail(f"{w.name} ended with {w.process.returncode}: {w.lines[-5:]}")
                return all(sees_workers(w, 3) for w in workers)

            await until(all_see_three, "three workers seeing each other")
            settled = datetime.now(UTC) + timedelta(seconds=1)  # rounds in flight are done
            async with Store.open(url, migrate=False) as store:
                members = [m.holder for m in await store.members.alive(datetime.now(UTC))]
            assert len(members) == 3
            share = {m: [k for k in keys if owner(k, members) == m] for m in members}

            async def every_target_probed_a_few_times() -> bool:
                rounds = await central_rounds(url, settled)
                return all(sum(1 for t, _ in rounds if t == k) >= 3 for k in keys)

            await until(every_target_probed_a_few_times, "a few rounds of every target")
            rounds = await central_rounds(url, settled)
            assert set(rounds.values()) == {1}  # no target twice in a round
            # Every worker's pages show every target, not only those it probes.
            for w in workers:

                async def complete(w: Worker = w) -> bool:
                    return set((await user_states(http, w)).values()) == {"ok"}

                await until(complete, f"{w.name}'s status showing every target")

            # The worker with the largest share is killed; the others take its targets over.
            victim_holder = max(members, key=lambda m: len(share[m]))
            victim = next(w for w in workers if victim_holder.startswith(f"{w.name}/"))
            orphans = share[victim_holder]
            assert orphans
            await victim.kill()
            killed_at = datetime.now(UTC)
            survivors = [w for w in workers if w is not victim]

            async def orphans_probed_again() -> bool:
                rounds = await central_rounds(url, killed_at)
                return all(any(t == k for t, _ in rounds) for k in orphans)

            await until(orphans_probed_again, "the killed worker's targets probed again")
            rounds = await central_rounds(url, killed_at)
            first = max(min(at for t, at in rounds if t == k) for k in orphans)
            takeover_s = (first - killed_at).total_seconds()
            print(f"a killed worker's targets probed again after {takeover_s:.1f}s (lease 3s)")
            assert takeover_s < 30

            async def two_see_two() -> bool:
                return all(sees_workers(w, 2) for w in survivors)

            await until(two_see_two, "the survivors seeing two workers")
            settled = datetime.now(UTC) + timedelta(seconds=1)

            async def a_few_more_rounds() -> bool:
                rounds = await central_rounds(url, settled)
                return all(sum(1 for t, _ in rounds if t == k) >= 3 for k in keys)

            await until(a_few_more_rounds, "a few rounds of every target by two workers")
            assert set((await central_rounds(url, settled)).values()) == {1}
    finally:
        codes = [await w.stop() for w in workers if w.process.returncode is None]
        for w in workers:
            if w.process.returncode is None:
                await w.kill()
    assert codes == [0, 0]


async def role(http: aiohttp.ClientSession, worker: Worker) -> str:
    async with http.get(f"{worker.web_url}/healthz") as response:
        return response.headers.get("X-Ctiwatch-Role", "")
