"""Any worker takes people's actions: two ``ctiwatch run`` processes on one PostgreSQL database
and the machine's Mosquitto; everything a person does goes to the worker that is *not* the
active monitor, as a load balancer would send it.

Questions opened through the follower's API, then one incident acknowledged through the
follower's console form (logged in, CSRF token), one through its JSON API (a token) and one by an
SMS reply ``ACK n`` to its Twilio webhook (signed for its public URL): each applied exactly once
by the active monitor, audited with the real actor and source address, one ``acknowledged``
entry on its timeline; acknowledging again is refused with the active monitor's words.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_app_crash import TOKEN, outside  # noqa: F401 - outside is a fixture
from test_workers import (  # noqa: F401 - workers_database is a fixture
    ONCALL,
    Worker,
    all_ready,
    role,
    start_workers,
    workers_database,
)
from twilio.request_validator import RequestValidator

from ctiwatch.accounts import Accounts
from ctiwatch.clock import RealClock
from ctiwatch.fakes import FakeSmtp, FakeTwilio
from ctiwatch.storage import Store

pytestmark = pytest.mark.postgres

PASSWORD = "a long enough password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        found = _CSRF.search(await response.text())
    assert found is not None, f"no CSRF token on {url}"
    return found.group(1)


async def test_people_acting_through_a_follower_console_api_and_sms_are_applied_once_by_the_leader(
    tmp_path: Path,
    workers_database: str,  # noqa: F811 - test_workers' fixture
    outside: tuple[FakeTwilio, FakeSmtp, str],  # noqa: F811 - test_app_crash's fixture
) -> None:
    url = workers_database
    prefix = f"ctiwatch-test-{uuid.uuid4().hex[:8]}/v1"
    async with Store.open(url, migrate=False) as store:
        accounts = Accounts(store, RealClock())
        token, _ = await accounts.create_token("ci", "oncall", by="test")
        await accounts.add_user("olga", "oncall", PASSWORD, by="test")
        await accounts.add_user("sanne", "oncall", PASSWORD, phone=ONCALL, by="test")
    workers = await start_workers(["worker-1", "worker-2"], tmp_path, url, outside, prefix)
    try:
        await all_ready(workers)
        async with aiohttp.ClientSession() as http:
            roles = [await role(http, w) for w in workers]
        assert sorted(r.split(";")[0] for r in roles) == ["follower", "leader"]
        follower = workers[[r == "follower" for r in roles].index(True)]
        api = {"Authorization": f"Bearer {token}"}

        async with aiohttp.ClientSession(headers=api) as http:
            for n, text in enumerate(["CRM slow?", "Calls dropped?", "Click2Dial late?"], 1):
                async with http.post(
                    f"{follower.web_url}/api/v1/questions", json={"customer": "acme", "text": text}
                ) as response:
                    assert response.status == 201, await response.text()
                    assert (await response.json())["number"] == n

        # 1: the console form, logged in on the follower.
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            login = await csrf(http, f"{follower.web_url}/login")
            async with http.post(
                f"{follower.web_url}/login",
                data={"username": "olga", "password": PASSWORD, "csrf_token": login},
                allow_redirects=False,
            ) as response:
                assert response.status == 303, await response.text()
            form = await csrf(http, f"{follower.web_url}/incidents/1")
            async with http.post(
                f"{follower.web_url}/incidents/1/ack", data={"csrf_token": form},
                allow_redirects=False,
            ) as response:  # fmt: skip
                assert response.status == 303, await response.text()
                assert response.headers["Location"] == "/incidents/1?done=ack"
            async with http.get(f"{follower.web_url}/incidents/1?done=ack") as response:
                page = await response.text()
            assert "Incident acknowledged." in page

        # 2: the JSON API on the follower, twice: the second is the leader's refusal.
        async with aiohttp.ClientSession(headers=api) as http:
            async with http.post(f"{follower.web_url}/api/v1/incidents/2/ack", json={}) as response:
                assert response.status == 200, await response.text()
            async with http.post(f"{follower.web_url}/api/v1/incidents/2/ack", json={}) as response:
                assert response.status == 409
                assert (await response.json())["error"] == "incident 2 is already acknowledged"

        # 3: an SMS reply to the follower's webhook, signed for its public URL.
        params = {"From": ONCALL, "To": "+3197010000004", "Body": "ACK 3",
                  "MessageSid": "SM" + "3" * 32}  # fmt: skip
        webhook = f"{follower.web_url}/twilio/sms"
        signature = RequestValidator(TOKEN).compute_signature(webhook, params)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                webhook, data=params, headers={"X-Twilio-Signature": signature}
            ) as response:
                assert response.status == 200
                assert "Incident 3 acknowledged. Thank you." in await response.text()
            # A stranger's forged request: refused on the follower, nothing handed over.
            forged = {**params, "MessageSid": "SM" + "4" * 32, "Body": "RESOLVE 3"}
            async with http.post(
                webhook, data=forged, headers={"X-Twilio-Signature": signature}
            ) as response:
                assert response.status == 403

        async with aiohttp.ClientSession() as http:
            roles_after = [await role(http, w) for w in workers]
        assert roles_after == roles  # the follower stayed a follower throughout
    finally:
        codes = [await w.stop() for w in workers if w.process.returncode is None]
        for w in workers:
            if w.process.returncode is None:
                await w.kill()
    assert codes == [0, 0]

    async with Store.open(url, migrate=False) as store:
        records = {r.number: r for r in await store.incidents.list()}
        timelines = {n: await store.incidents.timeline(n) for n in (1, 2, 3)}
        audit = await Accounts(store, RealClock()).audit_log()
        handovers = [await store.handovers.get(i) for i in range(1, 10)]
    assert sorted(records) == [1, 2, 3]
    assert all(r.acknowledged_at is not None and r.status == "open" for r in records.values())
    acks = {n: [e.actor for e in t if e.kind == "acknowledged"] for n, t in timelines.items()}
    assert acks == {1: ["olga"], 2: ["ci"], 3: ["sanne (SMS)"]}
    lines: list[tuple[Any, ...]] = [
        (a.actor, a.action, a.target, a.address)
        for a in sorted(audit, key=lambda a: a.id or 0)
        if a.action.startswith("incident.")
    ]
    assert lines == [
        ("ci", "incident.question", "incident 1", "127.0.0.1"),
        ("ci", "incident.question", "incident 2", "127.0.0.1"),
        ("ci", "incident.question", "incident 3", "127.0.0.1"),
        ("olga", "incident.ack", "incident 1", "127.0.0.1"),
        ("ci", "incident.ack", "incident 2", "127.0.0.1"),
        ("sanne (SMS)", "incident.ack", "incident 3", "127.0.0.1"),
    ]
    # Every action went through a handover taken in by the follower and done by the leader.
    done = [h for h in handovers if h is not None]
    assert [(h.kind, h.status) for h in done] == [
        ("open_question", "done"),
        ("open_question", "done"),
        ("open_question", "done"),
        ("acknowledge", "done"),
        ("acknowledge", "done"),
        ("acknowledge", "done"),  # refused: already acknowledged
        ("acknowledge", "done"),
    ]
    assert all(h.origin.startswith(f"{follower.name}/") for h in done)
    assert all(h.done_by and not h.done_by.startswith(f"{follower.name}/") for h in done)
