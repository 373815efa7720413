"""The console's HTML pages and forms over the real console service on SQLite."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import add_user, csrf_of, log_in, make_accounts
from console_scene import FORGOTTEN, NOW, Scene, example_scene, real_console, sqlite_url

from classifier.observation import Service
from ctiwatch.console import AgentHealthView
from ctiwatch.web.app import build_web_app
from ctiwatch.web.pages import MAINTENANCE_LABELS, form_error
from ctiwatch.web.service import MqttView, ServiceError, WindowRequest

# Tuesday 1 December 2026, 10:00 in Amsterdam (CET, UTC+1). example_scene: ACME is down at
# Amsterdam (incident 1, P1, opened 09:30 local), Globex is fine, incident 2 (Globex) resolved.

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with real_console(sqlite_url(tmp_path)) as playing:
        await example_scene(playing)
        yield playing


async def logged_in(
    aiohttp_client: ClientFactory,
    scene: Scene,
    user: str = "sanne",
    role: str = "admin",
    **options: Any,
) -> Client:
    """A browser logged in as ``user`` (an admin unless ``role`` says otherwise) on an app
    built with ``options``."""
    accounts = make_accounts(scene.store, scene.clock)
    options.setdefault("metrics_registry", prometheus_client.CollectorRegistry())
    app = build_web_app(scene.console, accounts=accounts, **options)
    client = await aiohttp_client(app)
    await add_user(accounts, user, role)
    await log_in(client, user)
    return client


@pytest.fixture
async def client(aiohttp_client: ClientFactory, scene: Scene) -> Client:
    return await logged_in(aiohttp_client, scene)


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status
    assert response.content_type == "text/html"
    return await response.text()


async def post_form(client: Client, path: str, data: dict[str, Any]) -> Any:
    """A form post of the logged-in browser: with the session's CSRF token."""
    return await client.post(
        path, data={**data, "csrf_token": csrf_of(client)}, allow_redirects=False
    )


# --- status page ----------------------------------------------------------------------------


async def test_status_page_shows_banner_tiles_open_incidents_and_agents(client: Client) -> None:
    html = await page(client, "/")
    assert 'class="banner b-down"' in html
    assert "Partial outage" in html  # one service of four is down
    assert "1 down · 1 open incident" in html
    tile = re.search(r'data-tile="acme/acme-ams/click2dial" data-state="(\w+)"', html)
    assert tile is not None and tile.group(1) == "down"
    assert 'data-tile="globex/globex-utr/crm" data-state="ok"' in html
    assert "99.1%" in html and "195 ms" in html and "112 calls" in html
    assert "all users: 3 consecutive failed rounds for every user at acme-ams (2 users)" in html
    assert '<tr class="incident" data-incident="2" data-priority="1">' in html
    assert '<span class="badge p1" title="Critical">P1</span>' in html
    assert "#2 Click2Dial unavailable at acme-ams (all users)" in html
    assert "CRM sometimes" not in html  # resolved incidents are history, not status
    assert 'data-agent="agent-ams-1"' in html and 'class="pill s-stale"' in html
    assert '<script src="/static/status.js" defer></script>' in html


_VIEWER_PART = re.compile(r'(<nav class="own".*?</nav>\s*)?<form class="who".*?</form>', re.S)


async def test_the_shared_status_page_shows_each_viewer_their_own_menu_and_no_one_elses(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(
        scene.console, accounts=accounts, metrics_registry=prometheus_client.CollectorRegistry()
    )
    browser = await aiohttp_client(app)
    await add_user(accounts, "sanne", "admin")
    await add_user(accounts, "piet", "viewer")
    kiosk, _ = await accounts.create_token("wall", "viewer", kiosk=True, by="test")

    sanne_csrf = await log_in(browser, "sanne")
    sanne_page = await page(browser, "/")
    assert '<span id="whoami" data-role="admin">sanne · admin</span>' in sanne_page
    assert f'name="csrf_token" value="{sanne_csrf}"' in sanne_page
    assert '<a href="/audit"' in sanne_page and '<a href="/admin"' in sanne_page

    browser.session.cookie_jar.clear()
    piet_csrf = await log_in(browser, "piet")
    piet_page = await page(browser, "/")
    assert '<span id="whoami" data-role="viewer">piet · viewer</span>' in piet_page
    assert f'name="csrf_token" value="{piet_csrf}"' in piet_page
    assert "sanne" not in piet_page and sanne_csrf not in piet_page
    assert '<a href="/audit"' not in piet_page and '<a href="/admin"' not in piet_page
    # One shared page: only the viewer's part differs, gzip or not.
    assert _VIEWER_PART.sub("", sanne_page) == _VIEWER_PART.sub("", piet_page)
    plain = await browser.get("/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert await plain.text() == piet_page

    browser.session.cookie_jar.clear()
    anonymous = await browser.get("/", allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"] == "/login?next=/"
    assert "piet" not in await anonymous.text()
    wall = await page(browser, f"/kiosk/{kiosk}")
    assert 'id="whoami"' not in wall and 'name="csrf_token"' not in wall
    assert "piet" not in wall and "sanne" not in wall
    again = await page(browser, "/login")  # nobody's page after all that: no one is named
    assert "piet · viewer" not in again and "sanne · admin" not in again


async def test_status_page_shows_times_in_amsterdam_local_time(client: Client) -> None:
    html = await page(client, "/")
    assert '<time id="generated" datetime="2026-12-01T10:00:00+01:00"' in html
    assert ">10:00:00</time>" in html
    assert ">42s ago</time>" in html  # last probe, relative to the status's own time
    assert "All times are Europe/Amsterdam local time" in html


async def test_status_page_shows_services_in_an_active_window_as_maintenance(
    client: Client, scene: Scene
) -> None:
    evening = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)  # Thu 21:00 in Amsterdam
    await scene.console.schedule_maintenance(
        WindowRequest(
            evening, evening + timedelta(hours=2), ["crm"], ["globex"], "CRM connector upgrade"
        ),
        "Sanne",
    )
    scene.clock.set(evening + timedelta(hours=1))
    html = await page(client, "/")
    assert 'data-tile="globex/globex-utr/crm" data-state="maintenance"' in html
    assert 'data-tile="globex/globex-utr/click2dial" data-state="ok"' in html
    assert "CRM connector upgrade" in html
    assert "Thu 03 Dec 21:00 – Thu 03 Dec 23:00" in html


async def test_status_page_labels_recognition_as_answered_calls_in_the_last_hour(
    client: Client,
) -> None:
    html = await page(client, "/")
    assert '<div class="v">99.1%</div><div class="k">recognised · answered calls · 1h</div>' in html


async def test_a_degraded_card_shows_one_recognition_figure_rounded_down(
    client: Client, scene: Scene
) -> None:
    # 188 of 209 calls recognised: 89.952%, below the 90% of the degraded rule (P2); rounded
    # to the nearest it would read "90.0%" beside "< 90%".
    await scene.calls("globex", "globex-utr", "carol", recognised=188, unrecognised=21)
    scene.clock.set(NOW + timedelta(minutes=1))
    html = await page(client, "/")
    tile = re.search(r'data-tile="globex/globex-utr/crm".*?tile-foot', html, re.S)
    assert tile is not None
    assert 'data-state="degraded"' in tile.group(0)
    assert '<div class="v">89.9%</div>' in tile.group(0)
    assert '<div class="tile-detail">all users: recognition below 90%; carol: ' in tile.group(0)
    assert "90.0%" not in html
    opened = await scene.console.incident(3)
    assert opened is not None
    assert "recognition 89.9% (188/209) over the trailing hour < 90%" in opened.timeline[0].detail


async def test_status_page_mutes_a_down_services_recognition_as_before_the_outage(
    client: Client, scene: Scene
) -> None:
    await scene.rounds("acme", "acme-ams", ["alice", "anna"], Service.CRM, ok=False, count=3)
    html = await page(client, "/")
    assert (
        '<div class="v muted">99.1% <span class="note">(before the outage)</span></div>'
        '<div class="k">recognised · answered calls · 1h</div>'
    ) in html
    assert html.count("(before the outage)") == 1  # the up services' figures stay plain


async def test_status_page_banner_is_green_when_everything_is_operational(
    client: Client, scene: Scene
) -> None:
    await scene.rounds("acme", "acme-ams", ["alice", "anna"], Service.CLICK2DIAL, ok=True,
                       count=3)  # fmt: skip
    html = await page(client, "/")
    assert 'class="banner b-ok"' in html
    assert "All systems operational" in html
    assert "No open incidents." in html


def agent_cells(html: str, name: str) -> list[str]:
    """The text of each cell of an agent's row in the agents table."""
    row = re.search(rf'<tr data-agent="{re.escape(name)}".*?</tr>', html, re.S)
    assert row is not None, name
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def mqtt_line(html: str) -> str:
    found = re.search(r'<div class="mqtt[^"]*" id="mqtt".*?</div>', html, re.S)
    assert found is not None
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).split())


async def test_agents_table_shows_locations_results_received_reason_and_the_broker_state(
    client: Client,
) -> None:
    html = await page(client, "/")
    assert '<div class="mqtt m-connected" id="mqtt" data-state="connected">' in html
    assert mqtt_line(html) == "MQTT broker 127.0.0.1:1883 Connected"
    header = re.search(r'<section class="card" id="agents">.*?<thead>(.*?)</thead>', html, re.S)
    assert header is not None
    assert re.findall(r"<th[^>]*>(.*?)</th>", header.group(1)) == [
        "Agent",
        "Status",
        "Locations",
        "Results received",
        "Last seen",
        "Reason",
    ]
    assert agent_cells(html, "agent-ams-1") == [
        "agent-ams-1",
        "Online",
        "acme-ams",
        "1,284",
        "8s ago",
        "—",
    ]
    assert agent_cells(html, "agent-utr-1") == [
        "agent-utr-1",
        "Stale",
        "globex-utr",
        "96",
        "4m ago",
        "no report for 4m",
    ]
    assert '<td class="num" data-results="1284">1,284</td>' in html
    assert "results received" not in html  # no longer squeezed into a location line


async def test_unreachable_broker_is_a_line_above_the_agents_not_an_agent_row(
    client: Client, scene: Scene
) -> None:
    scene.mqtt = MqttView("127.0.0.1:1883", "unreachable", "[Errno 111] Connection refused")
    scene.agents[0] = AgentHealthView(
        "agent-ams-1",
        "offline",
        NOW - timedelta(minutes=3),
        25318,
        ("acme-ams", "acme-rtm"),
        "connection lost",
    )
    html = await page(client, "/")
    assert mqtt_line(html) == (
        "MQTT broker 127.0.0.1:1883 Unreachable MQTT broker unreachable: agents' results "
        "cannot arrive ([Errno 111] Connection refused)."
    )
    assert 'class="pill s-unreachable"' in html
    assert html.index('id="mqtt"') < html.index('data-agent="agent-ams-1"')
    assert re.findall(r'<tr data-agent="([^"]+)"', html) == ["agent-ams-1", "agent-utr-1"]
    assert agent_cells(html, "agent-ams-1") == [
        "agent-ams-1",
        "Offline",
        "acme-ams, acme-rtm",
        "25,318",
        "3m ago",
        "connection lost",
    ]


async def test_disabled_mqtt_says_the_central_prober_runs_every_check(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    async with real_console(sqlite_url(tmp_path)) as empty:
        empty.mqtt = MqttView("127.0.0.1:1883", "disabled")
        html = await page(await logged_in(aiohttp_client, empty), "/")
    assert mqtt_line(html) == (
        "MQTT broker Disabled MQTT is off: no remote agents report; "
        "the central prober runs every check."
    )
    assert "<table" not in html.split('id="agents"')[1]


# --- incidents ------------------------------------------------------------------------------


async def test_incidents_page_lists_history_newest_first(client: Client) -> None:
    html = await page(client, "/incidents")
    numbers = re.findall(r'<tr class="incident" data-incident="(\d+)">', html)
    assert numbers == ["2", "1"]
    assert "(automatically)" in html


async def test_incidents_page_filters_by_status_and_customer(client: Client) -> None:
    html = await page(client, "/incidents?status=resolved")
    assert re.findall(r'data-incident="(\d+)"', html) == ["1"]
    html = await page(client, "/incidents?customer=acme")
    assert re.findall(r'data-incident="(\d+)"', html) == ["2"]
    assert '<option value="acme" selected>ACME B.V.</option>' in html


def sla_cell(html: str, number: int) -> str:
    row = re.search(rf'<tr class="incident" data-incident="{number}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for incident {number}"
    cell = re.search(r'<td class="sla"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert cell is not None
    return cell.group(1)


async def test_incidents_page_sla_column_shows_the_next_deadline_or_best_effort(
    client: Client, scene: Scene
) -> None:
    html = await page(client, "/incidents")
    # The open P1, not yet acknowledged: its response is due first (4 support hours from 09:30).
    assert "Response due " in sla_cell(html, 2)
    assert '<time datetime="2026-12-01T13:30:00+01:00">' in sla_cell(html, 2)
    assert "—" in sla_cell(html, 1)  # resolved: nothing is due
    question = await scene.console.open_question("globex", "sanne", "Can we add a location?")
    await scene.console.acknowledge(question, "sanne")
    html = await page(client, "/incidents")
    assert "Best effort" in sla_cell(html, question)  # P4: update and repair set none
    assert "<time" not in sla_cell(html, question)


async def test_incidents_page_with_unknown_status_says_so(client: Client) -> None:
    html = await page(client, "/incidents?status=bogus", status=400)
    assert "unknown status &#39;bogus&#39;" in html


async def test_incident_page_shows_timeline_deadlines_scope_and_actions(client: Client) -> None:
    html = await page(client, "/incidents/2")
    assert "#2 Click2Dial unavailable at acme-ams (all users)" in html
    assert 'data-kind="opened"' in html and 'data-kind="escalated"' in html
    # P1 response: 4 support hours from 09:30 local.
    assert '<tr data-target="response"><td>Response due</td>' in html
    assert '<time datetime="2026-12-01T13:30:00+01:00">Tue 01 Dec 2026 13:30</time>' in html
    assert "to be determined" in html  # P1 has no repair target
    assert "all users" in html and "3 consecutive failed rounds" in html
    assert 'formaction="/incidents/2/ack"' in html
    assert 'formaction="/incidents/2/reopen"' not in html


async def test_incident_page_shows_breach_badges(client: Client, scene: Scene) -> None:
    scene.clock.set(datetime(2026, 12, 1, 12, 31, tzinfo=UTC))  # response was due 13:30 local
    await scene.pipeline.tick()
    html = await page(client, "/incidents/2")
    assert '<span class="badge breach">response breached</span>' in html
    assert 'data-kind="response_breach"' in html


async def test_unknown_incident_page_is_404(client: Client) -> None:
    html = await page(client, "/incidents/99", status=404)
    assert "Incident 99 does not exist." in html


async def test_unknown_page_is_a_404_page(client: Client) -> None:
    html = await page(client, "/nowhere", status=404)
    assert "Not found." in html


# --- incident forms -------------------------------------------------------------------------


async def test_acknowledge_form_redirects_and_records_the_logged_in_user_not_a_typed_name(
    client: Client, scene: Scene
) -> None:
    response = await post_form(client, "/incidents/2/ack", {"actor": "Mallory"})
    assert response.status == 303
    assert response.headers["Location"] == "/incidents/2?done=ack"
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "acknowledged"
    assert detail.timeline[-1].actor == "sanne"
    html = await page(client, "/incidents/2?done=ack")
    assert "Incident acknowledged." in html
    assert 'name="actor"' not in html  # no name to type: who acts is who is logged in
    assert 'formaction="/incidents/2/ack"' not in html


async def test_update_form_posts_the_text_on_the_timeline(client: Client, scene: Scene) -> None:
    form = {"text": "Carrier confirms the fault.", "priority": "1", "reason": ""}
    response = await post_form(client, "/incidents/2/update", form)
    assert response.status == 303
    detail = await scene.console.incident(2)
    assert detail is not None
    assert (detail.timeline[-1].kind, detail.timeline[-1].detail) == (
        "updated",
        "Carrier confirms the fault.",
    )


async def test_update_form_without_text_shows_the_error(client: Client) -> None:
    response = await post_form(client, "/incidents/2/update", {"text": "  "})
    assert response.status == 400
    html = await response.text()
    assert '<div class="alert error" role="alert" data-field="text">' in html
    assert "Update: must not be empty" in html
    assert 'class="invalid"' in html


async def test_maintenance_form_without_a_start_names_the_start_label(client: Client) -> None:
    form = {"start": "", "end": "2026-12-01T23:00", "reason": "upgrade"}
    response = await post_form(client, "/maintenance", form)
    assert response.status == 400
    assert "Start: is required" in await response.text()


@pytest.mark.parametrize(
    ("message", "field", "shown"),
    [
        ("services[0]: must be click2dial or crm", "services",
         "Services: must be click2dial or crm"),
        ("end must be after start", "end", "End must be after start"),
        ("maintenance must lie outside support hours", "start",
         "maintenance must lie outside support hours"),
        ("the request body must be a JSON object", None, "the request body must be a JSON object"),
    ],
)  # fmt: skip
def test_form_errors_name_the_field_by_its_label_and_keep_field_and_status(
    message: str, field: str | None, shown: str
) -> None:
    error = form_error(ServiceError(message, field, 409), MAINTENANCE_LABELS)
    assert (error.message, error.field, error.status) == (shown, field, 409)


async def test_console_forms_mark_the_fields_they_need_as_required(client: Client) -> None:
    maintenance = await page(client, "/maintenance")
    for name in ("start", "end", "reason"):
        assert f'id="{name}" name="{name}" required' in maintenance
    question = await page(client, "/incidents/new")
    for name in ("text",):
        assert f'id="{name}" name="{name}" required' in question


async def test_change_priority_form_lowers_the_priority_with_a_reason(
    client: Client, scene: Scene
) -> None:
    form = {"priority": "2", "reason": "only some users affected"}
    response = await post_form(client, "/incidents/2/priority", form)
    assert response.status == 303
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.priority == 2
    assert detail.timeline[-1].detail == "P1 → P2 by sanne: only some users affected"


async def test_change_priority_form_without_reason_is_refused(client: Client) -> None:
    form = {"priority": "2", "reason": ""}
    response = await post_form(client, "/incidents/2/priority", form)
    assert response.status == 400
    assert 'data-field="reason"' in await response.text()


async def test_change_priority_form_with_priority_out_of_range_is_refused(client: Client) -> None:
    form = {"priority": "7", "reason": "typo"}
    response = await post_form(client, "/incidents/2/priority", form)
    assert response.status == 400
    assert 'data-field="priority"' in await response.text()


async def test_resolve_form_while_conditions_hold_asks_to_confirm_with_a_reason(
    client: Client, scene: Scene
) -> None:
    form = {"reason": "a priority reason typed earlier"}
    response = await post_form(client, "/incidents/2/resolve", form)
    assert response.status == 409
    html = await response.text()
    assert (
        '<form class="card" id="confirm-resolve" method="post" action="/incidents/2/resolve">'
        in html
    )
    assert (
        '<li data-holding="click2dial/acme-ams/">Click2Dial at acme-ams, all users '
        "(seen by the central prober): 3 consecutive failed rounds for every user at "
        "acme-ams (2 users): HTTP 503 Service Unavailable</li>"
    ) in html
    assert f'<input type="hidden" name="csrf_token" value="{csrf_of(client)}">' in html
    assert '<input type="hidden" name="force" value="true">' in html
    assert '<textarea id="resolve_reason" name="resolve_reason" required' in html
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "open"

    refused = await post_form(client, "/incidents/2/resolve", {"force": "true"})
    assert refused.status == 400
    html = await refused.text()
    assert 'data-field="reason">Why resolve it now must not be empty</div>' in html
    assert 'id="confirm-resolve"' in html

    confirmed = {"force": "true", "resolve_reason": "carrier fixed the trunk"}
    assert (await post_form(client, "/incidents/2/resolve", confirmed)).status == 303
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "resolved"
    assert (detail.timeline[-1].actor, detail.timeline[-1].detail) == (
        "sanne",
        "resolved by sanne: carrier fixed the trunk" + FORGOTTEN,
    )


async def test_incident_page_says_resolving_asks_to_confirm_while_conditions_hold(
    client: Client,
) -> None:
    html = await page(client, "/incidents/2")
    assert "stops every SLA clock; conditions still hold, so you will be asked to confirm" in html
    assert 'id="confirm-resolve"' not in html


async def test_resolve_then_reopen_forms(client: Client, scene: Scene) -> None:
    resolve = {"force": "true", "resolve_reason": "fixed"}
    assert (await post_form(client, "/incidents/2/resolve", resolve)).status == 303
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "resolved"
    html = await page(client, "/incidents/2")
    assert 'formaction="/incidents/2/reopen"' in html
    assert (await post_form(client, "/incidents/2/reopen", {})).status == 303
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "open"


async def test_acknowledging_a_resolved_incident_says_why_with_409(client: Client) -> None:
    response = await post_form(client, "/incidents/1/ack", {})
    assert response.status == 409
    assert "cannot acknowledge incident 1: it is resolved" in await response.text()


async def test_form_on_unknown_incident_is_404(client: Client) -> None:
    response = await post_form(client, "/incidents/99/ack", {})
    assert response.status == 404
    assert "incident 99 does not exist" in await response.text()


async def test_form_with_unknown_action_is_404(client: Client) -> None:
    response = await post_form(client, "/incidents/2/explode", {})
    assert response.status == 404


async def test_cross_site_form_post_is_refused(client: Client, scene: Scene) -> None:
    response = await client.post(
        "/incidents/2/resolve",
        data={"actor": "Mallory"},
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "open"


# --- questions ------------------------------------------------------------------------------


async def test_question_page_lists_the_customers(client: Client) -> None:
    html = await page(client, "/incidents/new")
    assert '<option value="acme" >ACME B.V. (acme)</option>' in html
    assert '<option value="globex" >Globex Nederland (globex)</option>' in html


async def test_question_form_opens_a_p4_incident(client: Client, scene: Scene) -> None:
    form = {"customer": "globex", "text": "Can we add a location?"}
    response = await post_form(client, "/incidents/new", form)
    assert response.status == 303
    assert response.headers["Location"] == "/incidents/3?done=question"
    detail = await scene.console.incident(3)
    assert detail is not None
    assert (detail.summary.priority, detail.summary.customer) == (4, "globex")


async def test_question_form_for_unknown_customer_names_the_field(client: Client) -> None:
    form = {"customer": "nobody", "text": "Hello?"}
    response = await post_form(client, "/incidents/new", form)
    assert response.status == 400
    html = await response.text()
    assert 'data-field="customer"' in html
    assert "Hello?" in html


# --- maintenance ----------------------------------------------------------------------------


async def test_maintenance_page_states_the_outside_working_hours_rule(client: Client) -> None:
    html = await page(client, "/maintenance")
    assert "outside support hours" in html
    assert "will take place outside normal working hours" in html
    assert "No maintenance windows." in html


async def test_maintenance_form_schedules_a_window_in_the_evening(
    client: Client, scene: Scene
) -> None:
    form = [
        ("csrf_token", csrf_of(client)),
        ("start", "2026-12-03T22:00"),
        ("end", "2026-12-04T02:00"),
        ("services", "crm"),
        ("customers", "acme"),
        ("reason", "CRM connector upgrade"),
    ]
    response = await client.post("/maintenance", data=form, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/maintenance?done=scheduled"
    (window,) = await scene.console.maintenance()
    assert window.start == datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    assert (window.services, window.customers, window.state) == (("crm",), ("acme",), "scheduled")
    html = await page(client, "/maintenance?done=scheduled")
    assert "Maintenance window scheduled." in html
    assert "Thu 03 Dec 2026 22:00" in html


async def test_maintenance_form_inside_working_hours_is_refused_with_the_rule(
    client: Client, scene: Scene
) -> None:
    form = {"start": "2026-12-01T16:00", "end": "2026-12-01T18:00",
            "reason": "upgrade"}  # fmt: skip
    response = await post_form(client, "/maintenance", form)
    assert response.status == 400
    html = await response.text()
    assert 'data-field="start"' in html
    assert "maintenance must lie outside support hours" in html
    assert 'value="2026-12-01T16:00"' in html
    assert await scene.console.maintenance() == []


async def test_maintenance_form_with_a_time_that_does_not_exist_names_it(client: Client) -> None:
    # 28 March 2027: clocks go from 02:00 to 03:00 in Amsterdam.
    form = {"start": "2027-03-28T02:30", "end": "2027-03-28T05:00",
            "reason": "upgrade"}  # fmt: skip
    response = await post_form(client, "/maintenance", form)
    assert response.status == 400
    assert "2027-03-28 02:30 does not exist in Europe/Amsterdam" in await response.text()


async def test_maintenance_form_with_end_before_start_names_end(client: Client) -> None:
    form = {"start": "2026-12-01T23:00", "end": "2026-12-01T22:00",
            "reason": "upgrade"}  # fmt: skip
    response = await post_form(client, "/maintenance", form)
    assert response.status == 400
    assert 'data-field="end"' in await response.text()


async def test_cancel_maintenance_form(client: Client, scene: Scene) -> None:
    window = await scene.console.schedule_maintenance(
        WindowRequest(NOW + timedelta(hours=60), NOW + timedelta(hours=62), None, None, "upgrade"),
        "Sanne",
    )
    response = await post_form(client, f"/maintenance/{window.id}/cancel", {})
    assert response.status == 303
    (view,) = await scene.console.maintenance()
    assert (view.state, view.cancelled_by, view.cancelled_at) == ("cancelled", "sanne", NOW)
    response = await post_form(client, f"/maintenance/{window.id}/cancel", {})
    assert response.status == 409
    assert f"maintenance window {window.id} has been cancelled by sanne" in await response.text()


async def test_header_links_to_the_demo_fakes_when_the_app_is_given_them(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    links = [("Fake phone", "/fakes/phone"), ("Mailbox", "/fakes/mail")]
    client = await logged_in(aiohttp_client, scene, metrics_registry=None, nav_links=links)
    text = await page(client, "/incidents")
    assert '<a href="/fakes/phone" class="">Fake phone</a>' in text
    assert '<a href="/fakes/mail" class="">Mailbox</a>' in text


async def test_header_has_no_fake_links_by_default(client: Client) -> None:
    text = await page(client, "/")
    assert "/fakes/phone" not in text


async def test_maintenance_form_schedules_an_emergency_that_shows_its_justification(
    client: Client, scene: Scene
) -> None:
    form = [
        ("csrf_token", csrf_of(client)),
        ("start", "2026-12-01T11:00"),
        ("end", "2026-12-01T12:00"),
        ("locations", "acme-ams"),
        ("emergency", "on"),
        ("justification", "calls drop <since> 09:50"),
        ("reason", "hotfix"),
    ]
    response = await client.post("/maintenance", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    (window,) = await scene.console.maintenance()
    assert (window.emergency, window.locations) == (True, ("acme-ams",))
    html = await page(client, "/maintenance")
    assert "<span data-justification>calls drop &lt;since&gt; 09:50</span>" in html
    assert "must start at least 48h from now" in html


async def test_maintenance_form_without_enough_notice_is_refused_with_the_rule(
    client: Client, scene: Scene
) -> None:
    form = {"start": "2026-12-02T22:00", "end": "2026-12-03T02:00",
            "reason": "upgrade"}  # fmt: skip
    response = await post_form(client, "/maintenance", form)
    assert response.status == 400
    html = await response.text()
    assert 'data-field="start"' in html
    assert "announced at least 48h before it starts; this one starts in 36h" in html
    assert await scene.console.maintenance() == []


# --- changing a window from the console ------------------------------------------------------


async def _evening_window(scene: Scene) -> Any:
    """Thu 3 Dec 22:00-00:00 in Amsterdam (60 h ahead: outside support hours, with notice)."""
    return await scene.console.schedule_maintenance(
        WindowRequest(NOW + timedelta(hours=60), NOW + timedelta(hours=62), None, None, "upgrade"),
        "Piet",
    )


def _change(window: Any, **fields: Any) -> list[tuple[str, str]]:
    """The change form as the page fills it, with ``fields`` typed over it."""
    form: dict[str, Any] = {
        "start": "2026-12-03T22:00",
        "end": "2026-12-04T00:00",
        "reason": "upgrade",
        "why": "the vendor needs an extra hour",
        **fields,
    }
    return [
        (name, item)
        for name, value in form.items()
        for item in (value if isinstance(value, list) else [value])
    ]


async def test_a_maintainer_changes_a_window_from_its_page_and_its_history_says_who_when_why(
    client: Client, scene: Scene
) -> None:
    window = await _evening_window(scene)
    listing = await page(client, "/maintenance")
    assert f'<a class="change" href="/maintenance/{window.id}">Change</a>' in listing
    html = await page(client, f"/maintenance/{window.id}")
    assert f'action="/maintenance/{window.id}/change"' in html
    assert 'name="start" required value="2026-12-03T22:00"' in html  # the window as it is
    assert 'name="end" required value="2026-12-04T00:00"' in html
    assert f'name="csrf_token" value="{csrf_of(client)}"' in html

    typed = _change(window, end="2026-12-04T01:00", services=["crm"], customers=["acme"])
    response = await client.post(
        f"/maintenance/{window.id}/change",
        data=[("csrf_token", csrf_of(client)), *typed],
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/maintenance/{window.id}?done=changed"
    changed = await scene.console.maintenance_window(window.id)
    assert (changed.revision, changed.end, changed.services, changed.customers) == (
        2,
        NOW + timedelta(hours=63),
        ("crm",),
        ("acme",),
    )
    assert [(h.action, h.actor, h.at, h.reason) for h in changed.history] == [
        ("scheduled", "Piet", NOW, ""),
        ("changed", "sanne", NOW, "the vendor needs an extra hour"),
    ]
    audit = await scene.store.accounts.audit_log(actor="sanne")
    assert (audit[0].action, audit[0].target, audit[0].detail) == (
        "maintenance.change",
        f"maintenance window {window.id}",
        "the vendor needs an extra hour",
    )
    shown = await page(client, f"/maintenance/{window.id}?done=changed")
    assert "Maintenance window changed." in shown
    assert (
        "Before: Thu 03 Dec 2026 22:00 – Fri 04 Dec 00:00; all services; all customers: upgrade"
        in shown
    )
    assert 'name="end" required value="2026-12-04T01:00"' in shown


async def test_a_change_the_rules_refuse_is_shown_in_the_form_naming_the_field(
    client: Client, scene: Scene
) -> None:
    window = await _evening_window(scene)

    async def change(**fields: Any) -> tuple[int, str]:
        response = await client.post(
            f"/maintenance/{window.id}/change",
            data=[("csrf_token", csrf_of(client)), *_change(window, **fields)],
            allow_redirects=False,
        )
        return response.status, await response.text()

    status, html = await change(end="2026-12-04T09:00")  # into Friday's support hours
    assert status == 400
    assert 'role="alert" data-field="end"' in html and "08:30" in html
    assert 'name="end" required value="2026-12-04T09:00"' in html  # what was typed stays
    status, html = await change(why="  ")
    assert status == 400
    assert 'data-field="why">Why change: must not be empty' in html
    status, html = await change(start="2026-13-45T99:99")
    assert status == 400 and 'data-field="start"' in html
    status, html = await change(customers=["nobody"])
    assert status == 400 and "unknown customer &#39;nobody&#39;" in html
    # Wed 22:00-23:00: 36 h ahead, too little notice (the start moves, so the notice counts).
    status, html = await change(start="2026-12-02T22:00", end="2026-12-02T23:00")
    assert status == 400 and 'data-field="start"' in html and "48h" in html
    assert (await scene.console.maintenance_window(window.id)).revision == 1  # nothing changed
    await scene.console.cancel_maintenance(window.id, "Piet", "postponed")
    status, html = await change()
    assert status == 409 and "has been cancelled by Piet" in html
    response = await client.get("/maintenance/999")
    assert response.status == 404
    assert "maintenance window 999 does not exist" in await response.text()


async def test_a_viewer_sees_a_windows_history_but_no_form_and_may_not_change_it(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    window = await _evening_window(scene)
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(
        scene.console, accounts=accounts, metrics_registry=prometheus_client.CollectorRegistry()
    )
    browser = await aiohttp_client(app)
    await add_user(accounts, "piet", "viewer")
    csrf = await log_in(browser, "piet")
    html = await page(browser, f"/maintenance/{window.id}")
    assert 'id="history"' in html and "Scheduled</strong> by Piet" in html
    assert 'id="change"' not in html and 'id="cancel"' not in html
    response = await browser.post(
        f"/maintenance/{window.id}/change",
        data=[("csrf_token", csrf), *_change(window)],
        allow_redirects=False,
    )
    assert response.status == 403
    assert (await scene.console.maintenance_window(window.id)).revision == 1


async def test_a_viewer_sees_the_maintenance_list_without_forms_they_may_not_use(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    window = await _evening_window(scene)
    viewer = await logged_in(aiohttp_client, scene, "piet", role="viewer")
    html = await page(viewer, "/maintenance")
    assert 'id="schedule"' not in html and 'class="cancel"' not in html
    assert 'id="schedule-role"' in html and "maintainer</strong> role" in html
    assert f'href="/maintenance/{window.id}">History</a>' in html
    maintainer = await logged_in(aiohttp_client, scene, "sanne", role="maintainer")
    html = await page(maintainer, "/maintenance")
    assert 'id="schedule"' in html and 'class="cancel"' in html
    assert f'href="/maintenance/{window.id}">Change</a>' in html


async def test_a_change_without_the_sessions_csrf_token_is_refused(
    client: Client, scene: Scene
) -> None:
    window = await _evening_window(scene)
    response = await client.post(
        f"/maintenance/{window.id}/change", data=_change(window), allow_redirects=False
    )
    assert response.status == 403
    assert (await scene.console.maintenance_window(window.id)).revision == 1


async def test_a_running_window_keeps_its_start_to_the_second_when_its_end_is_changed(
    client: Client, scene: Scene
) -> None:
    start = NOW + timedelta(hours=60, seconds=30)  # the API takes seconds; the form shows minutes
    window = await scene.console.schedule_maintenance(
        WindowRequest(start, start + timedelta(hours=2), None, None, "upgrade"), "Piet"
    )
    scene.clock.set(start + timedelta(hours=1))
    html = await page(client, f"/maintenance/{window.id}")
    assert "It has started: its start cannot move." in html
    response = await client.post(
        f"/maintenance/{window.id}/change",
        data=[("csrf_token", csrf_of(client)), *_change(window, end="2026-12-04T01:00")],
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    changed = await scene.console.maintenance_window(window.id)
    assert (changed.state, changed.start, changed.revision) == ("active", start, 2)
    response = await client.post(
        f"/maintenance/{window.id}/change",
        data=[("csrf_token", csrf_of(client)), *_change(window, start="2026-12-03T22:30")],
        allow_redirects=False,
    )
    assert response.status == 400
    assert "has started: its start cannot move" in await response.text()
