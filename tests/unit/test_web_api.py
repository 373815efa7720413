"""The JSON API, health, metrics and the app's error handling over the real console service
(``console_scene.example_scene``), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import bearer, make_accounts, token_for
from console_scene import FORGOTTEN, Scene, example_scene, real_console

from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.handover import RETRY_AFTER, no_monitor
from ctiwatch.web.app import build_web_app
from ctiwatch.web.service import StatusView, WindowRequest

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url) as playing:
        await example_scene(playing)
        yield playing


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory,
    scene: Scene,
    registry: prometheus_client.CollectorRegistry,
) -> Client:
    """The API as an automation token called ``Sanne`` (admin) sees it."""
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=registry)
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "Sanne")))


async def api_client(
    aiohttp_client: ClientFactory, scene: Scene, service: Any = None, **options: Any
) -> Client:
    """A client of an app built with ``options``, sending an admin token."""
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(service or scene.console, accounts=accounts, **options)
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "Sanne")))


async def get_json(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status
    assert response.content_type == "application/json"
    return await response.json()


async def post_json(client: Client, path: str, body: Any, status: int) -> Any:
    response = await client.post(path, json=body)
    assert response.status == status, await response.text()
    return await response.json()


# --- reading --------------------------------------------------------------------------------


async def test_api_status_has_banner_tiles_incidents_agents_in_local_time(client: Client) -> None:
    status = await get_json(client, "/api/v1/status")
    assert status["overall"] == {
        "state": "down",
        "headline": "Partial outage",
        "detail": "1 down · 1 open incident",
    }
    assert status["generated_at"] == "2026-12-01T10:00:00+01:00"
    acme = status["customers"][0]
    assert (acme["id"], acme["name"]) == ("acme", "ACME B.V.")
    c2d, crm = acme["locations"][0]["services"]
    assert c2d == {
        "service": "click2dial",
        "state": "down",
        "last_probe_at": "2026-12-01T09:59:18+01:00",
        "recognition_rate": None,
        "calls": 0,
        "latency_p95_ms": None,
        "incident_number": 2,
        "incident_priority": 1,
        "detail": "all users: 3 consecutive failed rounds for every user at acme-ams (2 users): "
        "HTTP 503 Service Unavailable",
        "seen_down_by": ["central"],
    }
    assert (crm["state"], crm["recognition_rate"], crm["calls"], crm["incident_number"]) == (
        "ok",
        111 / 112,
        112,
        None,
    )
    assert [i["number"] for i in status["open_incidents"]] == [2]
    assert status["recognition_window"] == "1h"
    assert status["agents"][1] == {
        "name": "agent-utr-1",
        "status": "stale",
        "last_seen": "2026-12-01T09:56:00+01:00",
        "location": "globex-utr",
        "results_received": 96,
        "locations": ["globex-utr"],
        "reason": "no report for 4m",
    }
    assert status["maintenance"] == []
    assert status["mqtt"] == {"broker": "127.0.0.1:1883", "state": "connected", "detail": ""}


async def test_api_incidents_filters_by_status_and_customer(client: Client) -> None:
    body = await get_json(client, "/api/v1/incidents")
    assert [i["number"] for i in body["incidents"]] == [2, 1]
    body = await get_json(client, "/api/v1/incidents?status=active")
    assert [i["number"] for i in body["incidents"]] == [2]
    body = await get_json(client, "/api/v1/incidents?customer=globex")
    assert [(i["number"], i["status"], i["resolved_by"]) for i in body["incidents"]] == [
        (1, "resolved", "auto")
    ]
    body = await get_json(client, "/api/v1/incidents?limit=1")
    assert len(body["incidents"]) == 1


async def test_api_incident_summaries_name_the_next_sla_deadline_in_local_time(
    client: Client,
) -> None:
    body = await get_json(client, "/api/v1/incidents")
    deadlines = {i["number"]: (i["next_deadline"], i["next_due"]) for i in body["incidents"]}
    assert deadlines == {2: ("response", "2026-12-01T13:30:00+01:00"), 1: ("", None)}


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=closed", "status", "status: must be one of active, open, acknowledged, resolved"),
        ("limit=ten", "limit", "limit: must be a whole number, not 'ten'"),
        ("limit=0", "limit", "limit: must be between 1 and 500"),
    ],
)
async def test_api_incidents_bad_query_is_400_naming_the_field(
    client: Client, query: str, field: str, message: str
) -> None:
    body = await get_json(client, f"/api/v1/incidents?{query}", status=400)
    assert body == {"error": message, "field": field}


async def test_api_incident_detail_has_deadlines_scope_and_timeline(client: Client) -> None:
    body = await get_json(client, "/api/v1/incidents/2")
    assert body["number"] == 2 and body["priority"] == 1 and body["status"] == "open"
    assert body["opened_at"] == "2026-12-01T09:30:00+01:00"
    assert body["response_due"] == "2026-12-01T13:30:00+01:00"
    assert body["update_due"] == "2026-12-01T13:30:00+01:00"
    assert body["repair_due"] is None
    assert body["breaches"] == []
    assert body["scope"] == [
        {
            "service": "click2dial",
            "location": "acme-ams",
            "user": None,
            "priority": 1,
            "condition": "3 consecutive failed rounds for every user at acme-ams (2 users): "
            "HTTP 503 Service Unavailable",
            "cleared": False,
            "source": "central",
            "seen_by": "seen by the central prober",
        }
    ]
    # No outbox sender runs here, so no alert_sent: the third line was paged at 30 minutes.
    assert [(e["at"], e["kind"], e["detail"]) for e in body["timeline"]] == [
        (
            "2026-12-01T09:30:00+01:00",
            "opened",
            "P1 Critical: click2dial acme-ams location unavailable (P1): 3 consecutive failed "
            "rounds for every user at acme-ams (2 users): HTTP 503 Service Unavailable",
        ),
        ("2026-12-01T10:00:00+01:00", "escalated", "paged the third line"),
    ]


async def test_api_unknown_incident_is_404_json(client: Client) -> None:
    body = await get_json(client, "/api/v1/incidents/42", status=404)
    assert body == {"error": "incident 42 does not exist", "field": None}


async def test_api_unknown_path_is_404_json(client: Client) -> None:
    body = await get_json(client, "/api/v1/nothing", status=404)
    assert body == {"error": "not found", "field": None}


# --- actions --------------------------------------------------------------------------------


async def test_api_acknowledge_update_priority_resolve_reopen(client: Client) -> None:
    body = await post_json(client, "/api/v1/incidents/2/ack", {"actor": "Sanne"}, 200)
    assert (body["status"], body["acknowledged_at"]) == (
        "acknowledged",
        "2026-12-01T10:00:00+01:00",
    )
    body = await post_json(
        client, "/api/v1/incidents/2/update", {"actor": "Sanne", "text": "On it."}, 200
    )
    assert body["timeline"][-1] == {
        "at": "2026-12-01T10:00:00+01:00",
        "kind": "updated",
        "detail": "On it.",
        "actor": "Sanne",
    }
    change = {"actor": "Sanne", "priority": 2, "reason": "one user only"}
    body = await post_json(client, "/api/v1/incidents/2/priority", change, 200)
    assert body["priority"] == 2
    assert body["repair_due"] == "2026-12-03T17:00:00+01:00"  # the SLA calendar, not wall time
    forced = {"actor": "Sanne", "force": True, "reason": "carrier confirms the fix"}
    body = await post_json(client, "/api/v1/incidents/2/resolve", forced, 200)
    assert (body["status"], body["resolved_by"]) == ("resolved", "person")
    assert (
        body["timeline"][-1]["detail"] == "resolved by Sanne: carrier confirms the fix" + FORGOTTEN
    )
    body = await post_json(client, "/api/v1/incidents/2/reopen", {"actor": "Sanne"}, 200)
    assert body["status"] == "open"


async def test_api_resolve_while_conditions_hold_needs_force_409_naming_what_holds(
    client: Client,
) -> None:
    body = await post_json(client, "/api/v1/incidents/2/resolve", {"actor": "Sanne"}, 409)
    assert body == {
        "error": "conditions in the scope of incident 2 still hold: Click2Dial at acme-ams, "
        "all users: 3 consecutive failed rounds for every user at acme-ams (2 users): HTTP 503 "
        "Service Unavailable. Resolving it anyway needs force and a reason; if they persist, "
        "a new incident opens",
        "field": "force",
    }
    still = await get_json(client, "/api/v1/incidents/2")
    assert still["status"] == "open"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"actor": "Sanne", "force": True}, "reason", "reason must not be empty"),
        ({"actor": "Sanne", "force": True, "reason": "  "}, "reason", "reason must not be empty"),
        ({"actor": "Sanne", "force": "yes"}, "force", "force: must be true or false"),
    ],
)
async def test_api_forced_resolve_needs_a_reason(
    client: Client, body: dict[str, Any], field: str, message: str
) -> None:
    answer = await post_json(client, "/api/v1/incidents/2/resolve", body, 400)
    assert answer == {"error": message, "field": field}


@pytest.mark.parametrize(
    ("action", "body", "field", "message"),
    [
        ("ack", {"actor": 7}, "actor", "actor: must be a string"),
        ("ack", {"actor": "Sanne", "note": "x"}, "note", "note: unknown field"),
        ("update", {"actor": "Sanne"}, "text", "text: is required"),
        ("update", {"actor": "Sanne", "text": "   "}, "text", "text: must not be empty"),
        (
            "priority",
            {"actor": "Sanne", "priority": "2", "reason": "r"},
            "priority",
            "priority: must be a whole number",
        ),
        (
            "priority",
            {"actor": "Sanne", "priority": 5, "reason": "r"},
            "priority",
            "priority: must be 1, 2, 3 or 4",
        ),
        (
            "priority",
            {"actor": "Sanne", "priority": True, "reason": "r"},
            "priority",
            "priority: must be a whole number",
        ),
        ("priority", {"actor": "Sanne", "priority": 2}, "reason", "reason: is required"),
    ],
)
async def test_api_action_with_bad_body_is_400_naming_the_field(
    client: Client, action: str, body: dict[str, Any], field: str, message: str
) -> None:
    answer = await post_json(client, f"/api/v1/incidents/1/{action}", body, 400)
    assert answer == {"error": message, "field": field}


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"actor"'])
async def test_api_body_that_is_not_a_json_object_is_400(client: Client, raw: bytes) -> None:
    response = await client.post(
        "/api/v1/incidents/1/ack", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "the request body must be a JSON object",
        "field": None,
    }


async def test_api_body_must_be_sent_as_json(client: Client) -> None:
    response = await client.post("/api/v1/incidents/1/ack", data={"actor": "Sanne"})
    assert response.status == 415
    assert (await response.json())["error"].startswith("the request body must be JSON")


async def test_api_acknowledging_a_resolved_incident_is_409(client: Client) -> None:
    body = await post_json(client, "/api/v1/incidents/1/ack", {"actor": "Sanne"}, 409)
    assert body == {"error": "cannot acknowledge incident 1: it is resolved", "field": None}


async def test_api_reopening_an_open_incident_is_409(client: Client) -> None:
    body = await post_json(client, "/api/v1/incidents/2/reopen", {"actor": "Sanne"}, 409)
    assert body == {"error": "incident 2 is not resolved", "field": None}


async def test_api_action_on_unknown_incident_is_404(client: Client) -> None:
    body = await post_json(client, "/api/v1/incidents/42/resolve", {"actor": "Sanne"}, 404)
    assert body == {"error": "incident 42 does not exist", "field": None}


async def test_api_unknown_action_is_404(client: Client) -> None:
    # Each action is its own route (and operation in the OpenAPI document): no route, 404.
    body = await post_json(client, "/api/v1/incidents/1/explode", {"actor": "Sanne"}, 404)
    assert body == {"error": "not found", "field": None}


async def test_api_question_opens_a_p4_incident(client: Client) -> None:
    question = {"customer": "acme", "actor": "Sanne", "text": "Is the CRM link for Exact ready?"}
    response = await client.post("/api/v1/questions", json=question)
    assert response.status == 201
    assert response.headers["Location"] == "/api/v1/incidents/3"
    assert await response.json() == {"number": 3, "url": "/api/v1/incidents/3"}
    body = await get_json(client, "/api/v1/incidents/3")
    assert (body["priority"], body["customer"], body["title"]) == (
        4,
        "acme",
        "Is the CRM link for Exact ready?",
    )


async def test_api_question_for_unknown_customer_names_the_field(client: Client) -> None:
    question = {"customer": "nobody", "actor": "Sanne", "text": "Hello?"}
    body = await post_json(client, "/api/v1/questions", question, 400)
    assert body == {"error": "unknown customer 'nobody'", "field": "customer"}


# --- maintenance ----------------------------------------------------------------------------


def window(**changes: Any) -> dict[str, Any]:
    body = {
        "actor": "Sanne",
        "start": "2026-12-03T22:00:00+01:00",
        "end": "2026-12-04T02:00:00+01:00",
        "services": ["crm"],
        "reason": "CRM connector upgrade",
    }
    body.update(changes)
    return body


async def test_api_schedules_and_cancels_maintenance(client: Client) -> None:
    created = await post_json(client, "/api/v1/maintenance", window(), 201)
    assert created == {
        "id": 1,
        "start": "2026-12-03T22:00:00+01:00",
        "end": "2026-12-04T02:00:00+01:00",
        "services": ["crm"],
        "customers": None,
        "reason": "CRM connector upgrade",
        "created_by": "Sanne",
        "state": "scheduled",
        "cancelled_by": None,
        "cancelled_at": None,
        "locations": None,
        "emergency": False,
        "justification": "",
        "recurrence": None,
        "occurrences": [],
        "revision": 1,
        "history": [
            {
                "revision": 1,
                "action": "scheduled",
                "at": "2026-12-01T10:00:00+01:00",
                "actor": "Sanne",
                "reason": "",
                "before": None,
            }
        ],
    }
    listed = await get_json(client, "/api/v1/maintenance")
    assert [w["id"] for w in listed["maintenance"]] == [1]
    status = await get_json(client, "/api/v1/status")
    assert [w["id"] for w in status["maintenance"]] == [1]
    cancelled = await post_json(client, "/api/v1/maintenance/1/cancel", {}, 200)
    assert cancelled == {
        **created,
        "state": "cancelled",
        "cancelled_by": "Sanne",
        "cancelled_at": "2026-12-01T10:00:00+01:00",
        "revision": 2,
        "history": [
            *created["history"],
            {
                "revision": 2,
                "action": "cancelled",
                "at": "2026-12-01T10:00:00+01:00",
                "actor": "Sanne",
                "reason": "",
                "before": {
                    "start": "2026-12-03T21:00:00+00:00",
                    "end": "2026-12-04T01:00:00+00:00",
                    "services": ["crm"],
                    "customers": [],
                    "locations": [],
                    "reason": "CRM connector upgrade",
                    "recurrence": None,
                    "emergency": False,
                    "justification": "",
                },
            },
        ],
    }
    # Kept as history, no longer among the windows the status page announces.
    listed = await get_json(client, "/api/v1/maintenance")
    assert [(w["id"], w["state"]) for w in listed["maintenance"]] == [(1, "cancelled")]
    status = await get_json(client, "/api/v1/status")
    assert status["maintenance"] == []
    again = await post_json(client, "/api/v1/maintenance/1/cancel", {}, 409)
    assert again == {"error": "maintenance window 1 has been cancelled by Sanne", "field": None}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"start": "2026-12-03T16:00:00+01:00"},
            "start",
            "maintenance must lie outside support hours: the window starts inside them "
            "(Thu 03 Dec 16:00)",
        ),
        (
            {"start": "2026-12-01T22:00:00"},
            "start",
            "start: must be a time with a UTC offset, e.g. 2026-12-02T22:00:00+01:00",
        ),
        (
            {"end": "tomorrow"},
            "end",
            "end: must be a time with a UTC offset, e.g. 2026-12-02T22:00:00+01:00",
        ),
        ({"end": "2026-12-03T21:00:00+01:00"}, "end", "end must be after start"),
        ({"services": ["fax"]}, "services", "services[0]: must be click2dial or crm"),
        ({"customers": ["nobody"]}, "customers", "unknown customer 'nobody'"),
        ({"reason": ""}, "reason", "reason: must not be empty"),
    ],
)
async def test_api_bad_maintenance_is_400_naming_the_field(
    client: Client, changes: dict[str, Any], field: str, message: str
) -> None:
    body = await post_json(client, "/api/v1/maintenance", window(**changes), 400)
    assert body == {"error": message, "field": field}


async def test_api_cancel_unknown_maintenance_is_404(client: Client) -> None:
    body = await post_json(client, "/api/v1/maintenance/9/cancel", {"actor": "Sanne"}, 404)
    assert body == {"error": "maintenance window 9 does not exist", "field": None}


# --- health, metrics, headers, failures -----------------------------------------------------


async def test_healthz_is_ok(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.text() == "ok"


async def test_metrics_expose_the_given_registry_and_request_counts(
    client: Client, registry: prometheus_client.CollectorRegistry
) -> None:
    prometheus_client.Counter("ctiwatch_probe_rounds", "rounds", registry=registry).inc(3)
    await client.get("/api/v1/incidents/1")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    assert "ctiwatch_probe_rounds_total 3.0" in text
    assert (
        'ctiwatch_http_requests_total{method="GET",route="/api/v1/incidents/{number}",'
        'status="200"} 1.0'
    ) in text


async def test_metrics_route_is_absent_without_a_registry(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    client = await api_client(aiohttp_client, scene, metrics_registry=None)
    assert (await client.get("/metrics")).status == 404
    assert (await client.get("/healthz")).status == 200


async def test_pages_carry_a_content_security_policy_with_the_style_nonce(client: Client) -> None:
    response = await client.get("/incidents")
    policy = response.headers["Content-Security-Policy"]
    nonce = policy.split("style-src 'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in await response.text()
    assert "script-src 'self'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_cached_status_page_allows_its_style_by_hash_not_by_a_nonce(
    client: Client,
) -> None:
    first, second = await client.get("/"), await client.get("/")
    policy = first.headers["Content-Security-Policy"]
    html = await first.text()
    style = html.split('<style nonce="">')[1].split("</style>")[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy and "nonce-" not in policy
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert await second.text() == html  # the same bytes until the state changes


async def test_status_script_is_served(client: Client) -> None:
    response = await client.get("/static/status.js")
    assert response.status == 200
    assert "/events" in await response.text()


async def test_extra_routes_are_added(aiohttp_client: ClientFactory, scene: Scene) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    def extra(app: web.Application) -> None:
        app.router.add_post("/twilio/voice", hello)

    client = await api_client(aiohttp_client, scene, metrics_registry=None, extra_routes=extra)
    response = await client.post("/twilio/voice")
    assert await response.text() == "hello"


class BrokenService(ConsoleServiceImpl):
    """The real console whose database is gone."""

    async def status(self) -> StatusView:
        raise RuntimeError("database is gone")


async def test_a_failing_service_gives_a_clean_500_not_a_traceback(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    broken = BrokenService(scene.config, scene.pipeline)
    client = await api_client(aiohttp_client, scene, broken, metrics_registry=None)
    response = await client.get("/")
    assert response.status == 500
    html = await response.text()
    assert "Something went wrong; it has been logged." in html
    assert "Traceback" not in html and "database is gone" not in html
    response = await client.get("/api/v1/status")
    assert response.status == 500
    assert await response.json() == {"error": "internal error", "field": None}


async def test_a_window_turns_active_then_ended_with_the_clock(scene: Scene) -> None:
    start = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
    view = await scene.console.schedule_maintenance(
        WindowRequest(start, start + timedelta(hours=2), None, None, "upgrade"), "Sanne"
    )
    assert view.state == "scheduled"
    scene.clock.set(start + timedelta(minutes=1))
    assert [w.state for w in await scene.console.maintenance()] == ["active"]
    status = await scene.console.status()
    assert {t.state for c in status.customers for loc in c.locations for t in loc.services} == {
        "maintenance"
    }
    scene.clock.set(start + timedelta(hours=3))
    assert [w.state for w in await scene.console.maintenance()] == ["ended"]


async def test_api_refuses_an_unknown_query_parameter_naming_it(client: Client) -> None:
    body = await get_json(client, "/api/v1/incidents?stauts=active", 400)
    assert body == {
        "error": "stauts: unknown query parameter (known: status, customer, limit)",
        "field": "stauts",
    }


async def test_api_action_while_no_worker_leads_is_503_with_retry_after(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    class Takeover:
        """The console of a worker that waited for an active monitor in vain."""

        def __getattr__(self, name: str) -> Any:
            return getattr(scene.console, name)

        async def acknowledge(self, number: int, actor: str, *, address: str = "") -> None:
            raise no_monitor("acknowledge", timedelta(seconds=10))

    registry = prometheus_client.CollectorRegistry()
    client = await api_client(aiohttp_client, scene, Takeover(), metrics_registry=registry)
    response = await client.post("/api/v1/incidents/2/ack", json={})
    assert response.status == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER)
    assert (await response.json())["error"].startswith(
        "could not acknowledge it now: no worker is the active monitor at the moment"
    )
