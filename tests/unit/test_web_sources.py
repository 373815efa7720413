"""Sources on the real console service (``console_scene``): which source saw what, on the status
page, in an incident's scope (web, JSON API), and a forced resolve's "follows incident N" kept
across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import bearer, make_accounts, token_for
from console_scene import NOW, Scene, real_console

from classifier.observation import Service
from ctiwatch.commands.incidents import render_incident
from ctiwatch.commands.status import render_status
from ctiwatch.web.app import build_web_app

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
AMS = ZoneInfo("Europe/Amsterdam")

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
ACME = ["alice", "anna"]


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url) as playing:
        yield playing


async def test_a_forced_resolve_names_the_incident_it_follows_after_a_restart(
    scene: Scene,
) -> None:
    await scene.rounds("acme", "acme-ams", ACME, Service.CLICK2DIAL, ok=False, count=3)
    await scene.console.resolve(1, "Sanne", "carrier says it is fixed", force=True)
    console = await scene.restart()
    scene.clock.set(NOW + timedelta(minutes=5))
    await scene.rounds("acme", "acme-ams", ACME, Service.CLICK2DIAL, ok=False, count=3)
    detail = await console.incident(2)
    assert detail is not None
    assert (detail.timeline[0].kind, detail.timeline[0].detail) == (
        "opened",
        "P1 Critical: click2dial acme-ams location unavailable (P1): 3 consecutive failed "
        "rounds for every user at acme-ams (2 users): HTTP 503 Service Unavailable"
        "; follows incident 1, resolved by Sanne while click2dial acme-ams location "
        "unavailable still held",
    )


async def agent_sees_an_outage_central_does_not(scene: Scene) -> None:
    """Three rounds: the central prober's 200s at :00, ams-agent-1's 503s at :30 (interleaved:
    one series would never count three failures in a row)."""
    start = scene.clock.now()
    for minute in range(3):
        scene.clock.set(start + timedelta(minutes=minute))
        await scene.rounds("acme", "acme-ams", ACME, Service.CLICK2DIAL, ok=True)
        scene.clock.set(start + timedelta(minutes=minute, seconds=30))
        await scene.rounds(
            "acme", "acme-ams", ACME, Service.CLICK2DIAL, ok=False, agent="ams-agent-1"
        )
    await scene.rounds("acme", "acme-ams", ACME, Service.CRM, ok=True)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, scene: Scene) -> Client:
    await agent_sees_an_outage_central_does_not(scene)
    registry = prometheus_client.CollectorRegistry()
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=registry)
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "viewer", "viewer")))


async def get_json(client: Client, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200
    return await response.json()


AGENT_REASON = (
    "3 consecutive failed rounds seen by ams-agent-1 for every user at acme-ams (2 users): "
    "HTTP 503 Service Unavailable"
)


async def test_the_api_shows_the_p1_an_agent_sees_while_the_central_prober_sees_200s(
    client: Client,
) -> None:
    status = await get_json(client, "/api/v1/status")
    c2d, crm = status["customers"][0]["locations"][0]["services"]
    assert (
        c2d["state"],
        c2d["seen_down_by"],
        c2d["incident_number"],
        c2d["incident_priority"],
    ) == (
        "down",
        ["ams-agent-1"],
        1,
        1,
    )
    assert c2d["detail"] == "all users: " + AGENT_REASON
    assert (crm["state"], crm["seen_down_by"]) == ("ok", [])
    assert [(i["number"], i["priority"]) for i in status["open_incidents"]] == [(1, 1)]
    incident = await get_json(client, "/api/v1/incidents/1")
    assert incident["scope"] == [
        {
            "service": "click2dial",
            "location": "acme-ams",
            "user": None,
            "priority": 1,
            "condition": AGENT_REASON,
            "cleared": False,
            "source": "ams-agent-1",
            "seen_by": "seen by ams-agent-1",
        }
    ]


async def test_the_status_page_tile_says_the_agent_sees_it_down_and_not_the_central_prober(
    client: Client,
) -> None:
    response = await client.get("/")
    html = await response.text()
    tile = html[html.index('data-tile="acme/acme-ams/click2dial"') :]
    tile = tile[: tile.index('data-tile="acme/acme-ams/crm"')]
    assert 'data-state="down"' in tile
    assert (
        '<div class="tile-source">seen down by ams-agent-1, not by the central prober</div>' in tile
    )
    assert '<a class="inc-link" href="/incidents/1">' in tile
    crm = html[html.index('data-tile="acme/acme-ams/crm"') :]
    assert "tile-source" not in crm[: crm.index("</div>\n          </div>")]


async def test_the_incident_page_names_the_agent_in_the_scope(client: Client) -> None:
    html = await (await client.get("/incidents/1")).text()
    assert (
        '<tr data-source="ams-agent-1"><td><span class="badge p1" title="Critical">P1</span></td>'
        "<td>Click2Dial</td><td>acme-ams</td>\n          <td>all users</td>"
        '<td class="seen-by">seen by ams-agent-1</td>'
    ) in html


async def test_the_cli_status_and_incident_name_the_agent(client: Client) -> None:
    status = render_status(await get_json(client, "/api/v1/status"), AMS).splitlines()
    [row] = [line for line in status if line.split()[:3] == ["acme", "acme-ams", "Click2Dial"]]
    assert "down (seen down by ams-agent-1, not by the central prober)" in row
    shown = render_incident(await get_json(client, "/api/v1/incidents/1"), AMS).splitlines()
    scope = shown.index("scope:")
    assert shown[scope + 1] == (
        "  click2dial at acme-ams (all users), P1, seen by ams-agent-1: " + AGENT_REASON
    )


async def test_a_tile_both_sources_see_down_says_so(scene: Scene) -> None:
    start = scene.clock.now()
    for minute in range(3):
        scene.clock.set(start + timedelta(minutes=minute))
        await scene.rounds("acme", "acme-ams", ACME, Service.CLICK2DIAL, ok=False)
        await scene.rounds(
            "acme", "acme-ams", ACME, Service.CLICK2DIAL, ok=False, agent="ams-agent-1"
        )
    view = await scene.console.status()
    tile = view.customers[0].locations[0].services[0]
    assert (tile.state, tile.seen_down_by) == ("down", ("ams-agent-1", "central"))
    detail = await scene.console.incident(1)
    assert detail is not None
    assert [(e.source, e.seen_by) for e in detail.scope] == [
        ("ams-agent-1", "seen by ams-agent-1"),
        ("central", "seen by the central prober"),
    ]
