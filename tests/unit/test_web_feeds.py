"""The per-customer feeds on the real service: the windows as iCalendar and the maintenance and
incident history as Atom, each parsed back; only what concerns that customer, escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import bearer, make_accounts, token_for
from console_scene import NOW, Scene, example_scene, real_console

from ctiwatch.web.app import build_web_app

Client = TestClient[web.Request, web.Application]
ATOM = "{http://www.w3.org/2005/Atom}"
START = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)  # Thu 3 Dec 22:00 in Amsterdam


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url) as playing:
        await example_scene(playing)
        yield playing


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]], scene: Scene) -> Client:
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=None)
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "feeds", "viewer")))


async def test_the_calendar_feed_holds_the_customers_windows_and_parses_back(
    client: Client, scene: Scene
) -> None:
    await scene.console.schedule_maintenance(
        START, START + timedelta(hours=3), ["crm"], ["acme"], "CRM <upgrade> & more", "Sanne",
        recurrence="FREQ=WEEKLY;COUNT=2",
    )  # fmt: skip
    await scene.console.schedule_maintenance(
        START, START + timedelta(hours=1), None, ["globex"], "Globex only", "Sanne"
    )
    emergency = await scene.console.schedule_maintenance(
        NOW + timedelta(hours=1), NOW + timedelta(hours=2), None, None, "hotfix", "Sanne",
        emergency=True, justification="calls drop; line 2\nwith a break",
    )  # fmt: skip
    await scene.console.cancel_maintenance(emergency.id, "Piet", "not needed")
    response = await client.get("/feeds/acme/maintenance.ics")
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


async def test_the_history_feed_is_atom_with_the_customers_windows_and_incidents(
    client: Client, scene: Scene
) -> None:
    await scene.console.schedule_maintenance(
        START, START + timedelta(hours=3), None, ["acme"], "Upgrade <b>now</b> & then", "Sanne"
    )
    response = await client.get("/feeds/acme/history.atom")
    assert response.status == 200
    assert response.content_type == "application/atom+xml"
    feed = ET.fromstring(await response.read())
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "ACME B.V.: maintenance and incidents"
    titles = [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]
    assert titles[0] == "Maintenance: Upgrade <b>now</b> & then (every service) (scheduled)"
    assert any(t and t.startswith("Incident 2: ") for t in titles)
    # Globex's incident 1 is not ACME's business.
    assert not any(t and t.startswith("Incident 1: ") for t in titles)
    for entry in feed.findall(f"{ATOM}entry"):
        assert entry.findtext(f"{ATOM}id") and entry.findtext(f"{ATOM}updated")


async def test_an_unknown_customer_has_no_feed(client: Client) -> None:
    response = await client.get("/feeds/nobody/history.atom")
    assert response.status == 404
