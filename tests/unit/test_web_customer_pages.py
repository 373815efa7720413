"""Customer status pages on the real service: reached by the customer's link (or the plain
address when config makes it public), holding that customer only, in plain words, with its
feeds under the link; a rotated link is gone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import add_user, log_in, make_accounts
from console_scene import NOW, TOPOLOGY, Scene, example_scene, real_console

from classifier.observation import Service
from ctiwatch.custpages import CustomerPagesImpl
from ctiwatch.web.app import build_web_app
from ctiwatch.web.service import WindowRequest

Client = TestClient[web.Request, web.Application]
ATOM = "{http://www.w3.org/2005/Atom}"
START = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)  # Thu 3 Dec 22:00 in Amsterdam

# What names Globex, or is internal, in the example scene: never on ACME's page.
NOT_ACMES = ("globex", "Globex", "Utrecht", "bob", "carol", "agent-", "HTTP 503", "consecutive")


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url) as playing:
        await example_scene(playing)
        yield playing


def customer_app(scene: Scene, pages: CustomerPagesImpl) -> web.Application:
    """The real web app, logins and all: a customer's page needs none, only its link."""
    accounts = make_accounts(scene.store, scene.clock)
    return build_web_app(scene.console, accounts=accounts, metrics_registry=None, customers=pages)


def customer_pages(scene: Scene) -> CustomerPagesImpl:
    return CustomerPagesImpl(scene.config, scene.pipeline, scene.console)


@pytest.fixture
async def pages(scene: Scene) -> CustomerPagesImpl:
    return customer_pages(scene)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], scene: Scene, pages: CustomerPagesImpl
) -> Client:
    app = customer_app(scene, pages)
    return await aiohttp_client(app)


async def link(scene: Scene, customer: str, rotate: bool = False) -> str:
    token = await scene.store.customer_links.make(customer, NOW, "test", rotate=rotate)
    assert token is not None
    return f"/status/{token}"


def visible_text(html: str) -> str:
    """What a person reads (tags, styles and attributes away), and the attributes' values."""
    body = re.sub(r"<style.*?</style>", "", html, flags=re.S)
    return body


async def test_a_customer_page_shows_its_services_in_words_and_no_other_customer(
    client: Client, scene: Scene
) -> None:
    await scene.console.update(2, "Sanne", "The platform team is restarting the dialler.")
    response = await client.get(await link(scene, "acme"))
    assert response.status == 200
    html = await response.text()
    assert "ACME B.V.: service status" in html
    assert "Amsterdam" in html and "Click2Dial" in html and "CRM integration" in html
    assert 'data-service="click2dial" data-state="down"' in html
    assert 'data-service="crm" data-state="ok"' in html
    assert "Service disruption" in html
    # Its incident in words with the person's update; the internal timeline stays inside.
    assert "Click2Dial unavailable in Amsterdam" in html
    assert "The platform team is restarting the dialler." in html
    assert "We noticed a problem and are looking into it." in html
    for text in NOT_ACMES:
        assert text not in visible_text(html), text
    assert "acme-ams" not in html  # not even its own ids: names only
    assert "Sanne" not in html  # who wrote an update is the operators' business
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_a_rotated_link_is_gone_and_the_new_one_works(client: Client, scene: Scene) -> None:
    old = await link(scene, "acme")
    assert (await client.get(old)).status == 200
    assert await scene.store.customer_links.make("acme", NOW, "test") is None  # no rotate: kept
    assert (await client.get(old)).status == 200
    new = await link(scene, "acme", rotate=True)
    for path in (old, old + "/feed.atom", old + "/maintenance.ics"):
        assert (await client.get(path)).status == 404, path
    assert (await client.get(new)).status == 200


async def test_an_unknown_link_and_the_plain_address_of_a_private_customer_are_not_found(
    client: Client, scene: Scene
) -> None:
    await link(scene, "acme")
    for path in (
        "/status/" + "x" * 43,
        "/status/c/acme",
        "/status/c/acme/feed.atom",
        "/status/c/nobody",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert "ACME" not in await response.text()
    # The old unguarded feed addresses are gone: to a stranger they are one more page
    # behind the login.
    for path in ("/feeds/acme/maintenance.ics", "/feeds/acme/history.atom"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next="), path


async def test_a_public_customer_is_at_its_plain_address_and_the_others_are_not(
    aiohttp_client: Callable[..., Awaitable[Client]], storage_url: str
) -> None:
    topology: dict[str, Any] = {
        "customers": [dict(TOPOLOGY["customers"][0], public=True), TOPOLOGY["customers"][1]]
    }
    async with real_console(storage_url, topology=topology) as scene:
        await example_scene(scene)
        app = customer_app(scene, customer_pages(scene))
        client = await aiohttp_client(app)
        response = await client.get("/status/c/acme")
        assert response.status == 200
        assert "ACME B.V.: service status" in await response.text()
        assert (await client.get("/status/c/acme/feed.atom")).status == 200
        assert (await client.get("/status/c/globex")).status == 404


async def test_the_calendar_feed_under_the_link_holds_the_customers_windows(
    client: Client, scene: Scene
) -> None:
    await scene.console.schedule_maintenance(
        WindowRequest(
            START,
            START + timedelta(hours=3),
            ["crm"],
            ["acme"],
            "CRM <upgrade> & more",
            recurrence="FREQ=WEEKLY;COUNT=2",
        ),
        "Sanne",
    )
    await scene.console.schedule_maintenance(
        WindowRequest(START, START + timedelta(hours=1), None, ["globex"], "Globex only"), "Sanne"
    )
    emergency = await scene.console.schedule_maintenance(
        WindowRequest(
            NOW + timedelta(hours=1),
            NOW + timedelta(hours=2),
            None,
            None,
            "hotfix",
            emergency=True,
            justification="calls drop; line 2\nwith a break",
        ),
        "Sanne",
    )
    await scene.console.cancel_maintenance(emergency.id, "Piet", "not needed")
    response = await client.get(await link(scene, "acme") + "/maintenance.ics")
    assert response.status == 200
    assert response.content_type == "text/calendar"
    calendar = icalendar.Calendar.from_ical(await response.read())
    events = sorted(calendar.walk("VEVENT"), key=lambda e: (e["DTSTART"].dt, str(e["UID"])))
    assert [(str(e["UID"]), e["DTSTART"].dt, str(e["STATUS"])) for e in events] == [
        ("maintenance-3-0@ctiwatch", NOW + timedelta(hours=1), "CANCELLED"),
        ("maintenance-1-0@ctiwatch", START, "CONFIRMED"),
        ("maintenance-1-1@ctiwatch", START + timedelta(days=7), "CONFIRMED"),
    ]
    assert str(events[1]["SUMMARY"]) == "Maintenance: CRM <upgrade> & more (CRM integration)"
    assert str(events[0]["SUMMARY"]) == "Emergency maintenance: hotfix (every service)"
    assert "Justification: calls drop; line 2\nwith a break" in str(events[0]["DESCRIPTION"])
    assert "Globex only" not in (await response.text())


async def test_the_history_feed_under_the_link_is_atom_with_the_customers_windows_and_incidents(
    client: Client, scene: Scene
) -> None:
    await scene.console.schedule_maintenance(
        WindowRequest(
            START, START + timedelta(hours=3), None, ["acme"], "Upgrade <b>now</b> & then"
        ),
        "Sanne",
    )
    response = await client.get(await link(scene, "acme") + "/feed.atom")
    assert response.status == 200
    assert response.content_type == "application/atom+xml"
    feed = ET.fromstring(await response.read())
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "ACME B.V.: maintenance and incidents"
    titles = [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]
    assert titles[0] == "Maintenance: Upgrade <b>now</b> & then (every service) (scheduled)"
    assert any(t and t.startswith("Incident 2: ") for t in titles)
    assert not any(t and t.startswith("Incident 1: ") for t in titles)  # Globex's
    for entry in feed.findall(f"{ATOM}entry"):
        assert entry.findtext(f"{ATOM}id") and entry.findtext(f"{ATOM}updated")


async def test_the_page_shows_upcoming_maintenance_with_the_emergency_justification(
    client: Client, scene: Scene
) -> None:
    await scene.console.schedule_maintenance(
        WindowRequest(
            NOW + timedelta(hours=1),
            NOW + timedelta(hours=2),
            ["crm"],
            None,
            "hotfix",
            emergency=True,
            justification="calls drop after the upgrade",
        ),
        "Sanne",
    )
    await scene.console.schedule_maintenance(
        WindowRequest(START, START + timedelta(hours=1), None, ["globex"], "Globex only"), "Sanne"
    )
    html = await (await client.get(await link(scene, "acme"))).text()
    assert "Emergency maintenance: calls drop after the upgrade" in html
    assert "CRM integration · Amsterdam" in html
    assert "Globex only" not in html


async def test_the_page_is_rendered_once_per_change_and_the_bars_read_once_per_hour(
    client: Client, scene: Scene, pages: CustomerPagesImpl
) -> None:
    path = await link(scene, "acme")
    first = await (await client.get(path)).read()
    assert pages.bar_builds == 1
    for _ in range(5):
        assert await (await client.get(path)).read() == first
    assert pages.bar_builds == 1
    scene.clock.set(NOW + timedelta(minutes=59, seconds=59))
    await scene.pipeline.tick()
    await client.get(path)
    assert pages.bar_builds == 1
    scene.clock.set(NOW + timedelta(hours=1))
    await scene.rounds("acme", "acme-ams", ["alice", "anna"], Service.CLICK2DIAL, ok=True, count=3)
    await client.get(path)
    assert pages.bar_builds == 2


@pytest.mark.parametrize("seed", [7, 23])
async def test_in_a_generated_topology_no_page_names_another_customer(
    aiohttp_client: Callable[..., Awaitable[Client]], storage_url: str, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    words = ["Kestrel", "Marlin", "Osprey", "Puffin", "Quokka", "Raven", "Sable", "Tapir"]
    rng.shuffle(words)
    customers = []
    for n, word in enumerate(words[:5]):
        cid = f"zq{n}{word.lower()}"
        customers.append(
            {
                "id": cid,
                "name": f"{word} Holding",
                "locations": [
                    {
                        "id": f"{cid}-site{k}",
                        "name": f"{word}ville {k}",
                        "users": [f"{word.lower()}u{k}"],
                    }
                    for k in range(rng.randint(1, 3))
                ],
            }
        )
    async with real_console(storage_url, topology={"customers": customers}) as scene:
        for c in customers:
            for loc in c["locations"]:
                await scene.rounds(
                    c["id"], loc["id"], loc["users"], Service.CLICK2DIAL, ok=rng.random() < 0.5,
                    count=3,
                )  # fmt: skip
        await scene.pipeline.tick()
        app = customer_app(scene, customer_pages(scene))
        client = await aiohttp_client(app)
        for c in customers:
            html = await (await client.get(await link(scene, c["id"]))).text()
            assert f"{c['name']}: service status" in html
            for other in customers:
                if other is c:
                    continue
                word = other["name"].split()[0]
                assert word not in html and word.lower() not in html, (c["id"], other["id"])


async def test_ctiwatch_customers_link_prints_a_link_that_opens_the_page_and_rotate_kills_it(
    client: Client,
    scene: Scene,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from ctiwatch.cli import main

    monkeypatch.setenv("LOGNAME", "piet")  # the system's user is who acts on the CLI

    file = tmp_path / "cli.yaml"
    customers = "\n".join(
        f"    - id: {c['id']}\n      locations: [{{id: {c['locations'][0]['id']}, users: [u]}}]"
        for c in TOPOLOGY["customers"]
    )
    file.write_text(
        f"storage:\n  url: {scene.config.storage.url}\ntopology:\n  customers:\n{customers}\n",
        encoding="utf-8",
    )

    def run(*args: str) -> int:
        return main(["customers", *args, "--config", str(file)])

    assert await asyncio.to_thread(run, "link", "acme", "--base-url", "https://status.example") == 0
    first = capsys.readouterr().out.strip()
    assert re.fullmatch(r"https://status\.example/status/[A-Za-z0-9_-]{43}", first)
    assert await asyncio.to_thread(run, "link", "acme") == 1
    assert "has a link already" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "link", "nobody") == 2
    assert "customer: unknown customer 'nobody'" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "link", "acme", "--rotate") == 0
    second = capsys.readouterr().out.strip()
    old, new = (link.partition("/status/")[2] for link in (first, second))
    assert (await client.get(f"/status/{old}")).status == 404
    assert (await client.get(f"/status/{new}")).status == 200
    # Each link made is on the audit log, in its own transaction; a refused one is not.
    audit = await scene.store.accounts.audit_log(actor="piet (cli)")
    assert [(a.action, a.target) for a in reversed(audit)] == [
        ("customer.link", "customer acme"),
        ("customer.link.rotate", "customer acme"),
    ]


async def test_the_operators_overview_gains_recognition_per_customer_location_user_and_history(
    aiohttp_client: Callable[..., Awaitable[Client]], scene: Scene, pages: CustomerPagesImpl
) -> None:
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=None, customers=pages)
    client = await aiohttp_client(app)
    await add_user(accounts, "sanne", "viewer")
    await log_in(client, "sanne")
    view = await scene.console.status()
    rows = [(r.level, r.name, r.calls, r.misses) for r in view.recognition]
    assert rows[:4] == [
        ("customer", "ACME B.V.", 112, 1),
        ("location", "Amsterdam", 112, 1),
        ("user", "alice", 112, 1),
        ("user", "anna", 0, 0),
    ]
    assert ("customer", "Globex Nederland", 0, 0) in rows
    assert [i.number for i in view.history] == [1]  # Globex's, resolved a day ago
    html = await (await client.get("/")).text()
    assert 'id="recognition"' in html and 'data-level="user"' in html
    assert "99.1%" in html  # 111 of 112
    assert '<div class="resolved" data-incident="1">' in html
    wall = await (await client.get("/wall")).text()
    assert 'data-user-tile="acme/acme-ams/alice/click2dial" data-state="down"' in wall
    assert 'data-user-tile="globex/globex-utr/bob/crm" data-state="ok"' in wall
    assert await (await client.get("/?layout=wall")).text() == wall
    assert "data-user-tile" in await (await client.get("/fragments/wall")).text()
