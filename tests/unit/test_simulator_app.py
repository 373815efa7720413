"""The simulator's aiohttp app: CloudCTI routes and the fault admin API (pytest-aiohttp)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ctiwatch.clock import FixedClock
from ctiwatch.simulator import SimulatorCore, SimUser, make_app

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer secret"}
CALL = "/api/v1/click2dial/acme/acme-ams/alice/calls"
LOOKUP = "/api/v1/recognition/acme/acme-ams/alice?number=%2B31201234567"

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, clock: FixedClock) -> TestClient[Any, Any]:
    core = SimulatorCore("secret", [SimUser("acme", "acme-ams", "alice")])
    return await aiohttp_client(make_app(core, clock, random.Random(3)))


async def test_click2dial_over_http_answers_201_with_a_call(client: TestClient[Any, Any]) -> None:
    response = await client.post(CALL, json={"number": "+31201234567"}, headers=AUTH)
    assert response.status == 201
    assert response.content_type == "application/json"
    assert await response.json() == {
        "call_id": "call-000001",
        "state": "ringing",
        "number": "+31201234567",
        "contact": {"name": "ctiwatch test contact", "number": "+31201234567"},
    }


async def test_recognition_over_http_answers_the_contact(client: TestClient[Any, Any]) -> None:
    response = await client.get(LOOKUP, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {
        "number": "+31201234567",
        "contacts": [{"name": "ctiwatch test contact", "number": "+31201234567"}],
    }


async def test_api_without_token_is_401(client: TestClient[Any, Any]) -> None:
    response = await client.get(LOOKUP)
    assert response.status == 401
    assert await response.json() == {"error": "missing or invalid bearer token"}


async def test_api_body_that_is_not_json_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post(CALL, data=b"number=1", headers=AUTH)
    assert response.status == 400
    assert await response.json() == {"errors": ["body: must be JSON"]}


async def test_outage_added_through_the_admin_api_fails_requests_until_removed(
    client: TestClient[Any, Any],
) -> None:
    created = await client.post("/admin/faults", json={"service": "crm", "kind": "outage"})
    assert created.status == 201
    fault = await created.json()
    assert fault == {
        "id": "f1",
        "service": "crm",
        "kind": "outage",
        "customer": None,
        "location": None,
        "users": None,
        "rate": 1.0,
        "latency": 0.0,
        "from": None,
        "to": None,
        "refuse": False,
        "sources": None,
    }
    down = await client.get(LOOKUP, headers=AUTH)
    assert down.status == 503
    assert await down.json() == {"error": "service unavailable"}
    call = await client.post(CALL, json={"number": "+31201234567"}, headers=AUTH)
    assert call.status == 201  # click2dial is not affected

    listed = await client.get("/admin/faults")
    assert await listed.json() == {"faults": [fault]}
    removed = await client.delete("/admin/faults/f1")
    assert removed.status == 204
    assert (await client.get(LOOKUP, headers=AUTH)).status == 200


async def test_fault_for_ten_minutes_ends_at_server_time_plus_ten_minutes(
    client: TestClient[Any, Any], clock: FixedClock
) -> None:
    created = await client.post(
        "/admin/faults", json={"service": "crm", "kind": "outage", "for": "10m"}
    )
    assert (await created.json())["to"] == "2026-12-01T09:10:00+00:00"
    assert (await client.get(LOOKUP, headers=AUTH)).status == 503
    clock.advance(timedelta(minutes=10))
    assert (await client.get(LOOKUP, headers=AUTH)).status == 200


async def test_slow_fault_answers_after_its_latency_on_the_injected_clock(
    client: TestClient[Any, Any], clock: FixedClock
) -> None:
    await client.post("/admin/faults", json={"service": "crm", "kind": "slow", "latency": "20s"})
    response = await client.get(LOOKUP, headers=AUTH)
    assert response.status == 200
    assert clock.now() == NOW + timedelta(seconds=20)


async def test_unrecognized_fault_answers_without_the_contact(
    client: TestClient[Any, Any],
) -> None:
    await client.post("/admin/faults", json={"service": "crm", "kind": "unrecognized"})
    response = await client.get(LOOKUP, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"number": "+31201234567", "contacts": []}


async def test_refusing_outage_drops_the_connection_unanswered(
    client: TestClient[Any, Any],
) -> None:
    await client.post(
        "/admin/faults", json={"service": "click2dial", "kind": "outage", "refuse": True}
    )
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(CALL, json={"number": "+31201234567"}, headers=AUTH)


async def test_clear_removes_every_fault(client: TestClient[Any, Any]) -> None:
    await client.post("/admin/faults", json={"service": "crm", "kind": "outage"})
    await client.post("/admin/faults", json={"service": "click2dial", "kind": "outage"})
    cleared = await client.delete("/admin/faults")
    assert await cleared.json() == {"cleared": 2}
    assert await (await client.get("/admin/faults")).json() == {"faults": []}


async def test_removing_an_unknown_fault_is_404(client: TestClient[Any, Any]) -> None:
    response = await client.delete("/admin/faults/f9")
    assert response.status == 404
    assert await response.json() == {"errors": ["fault 'f9' does not exist"]}


@pytest.mark.parametrize(
    ("body", "first_error"),
    [
        ({"kind": "outage"}, "service: is required"),
        ({"service": "sms", "kind": "outage"}, "service: "),
        ({"service": "crm", "kind": "broken"}, "kind: "),
        ({"service": "crm", "kind": "unrecognized", "rate": -0.1}, "rate: "),
        ({"service": "crm", "kind": "slow"}, "latency: "),
        ({"service": "crm", "kind": "outage", "to": "tomorrow"}, "to: "),
        ({"service": "crm", "kind": "outage", "users": []}, "users: "),
        ({"service": "crm", "kind": "outage", "for": "10m", "to": "2026-12-02T00:00:00Z"}, "for: "),
    ],
)
async def test_bad_fault_is_400_naming_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], first_error: str
) -> None:
    response = await client.post("/admin/faults", json=body)
    assert response.status == 400
    errors = (await response.json())["errors"]
    assert errors[0].startswith(first_error), errors
    assert await (await client.get("/admin/faults")).json() == {"faults": []}


async def test_fault_body_that_is_not_json_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post("/admin/faults", data=b"service=crm")
    assert response.status == 400
    assert await response.json() == {"errors": ["body: must be a JSON object"]}


async def test_fault_naming_an_unknown_customer_is_400_naming_the_field(
    client: TestClient[Any, Any],
) -> None:
    body = {"service": "crm", "kind": "outage", "customer": "acmee"}
    response = await client.post("/admin/faults", json=body)
    assert response.status == 400
    assert await response.json() == {"errors": ["customer: unknown customer 'acmee'"]}
    assert await (await client.get("/admin/faults")).json() == {"faults": []}


async def test_absurd_latency_is_400_naming_latency_not_a_500(
    client: TestClient[Any, Any],
) -> None:
    body = {"service": "crm", "kind": "slow", "latency": "99999999999999d"}
    response = await client.post("/admin/faults", json=body)
    assert response.status == 400
    assert await response.json() == {"errors": ["latency: must be at most 1h"]}


async def test_fault_seen_only_by_an_agent_leaves_central_requests_healthy(
    client: TestClient[Any, Any],
) -> None:
    body = {"service": "crm", "kind": "outage", "sources": ["ams-agent-1"]}
    created = await client.post("/admin/faults", json=body)
    assert (await created.json())["sources"] == ["ams-agent-1"]
    assert (await client.get(LOOKUP, headers=AUTH)).status == 200


async def test_fault_seen_only_by_an_agent_fails_the_requests_that_name_that_agent(
    client: TestClient[Any, Any],
) -> None:
    body = {"service": "crm", "kind": "outage", "sources": ["ams-agent-1"]}
    assert (await client.post("/admin/faults", json=body)).status == 201
    agent = {**AUTH, "User-Agent": "ctiwatch/0.1.0 (agent ams-agent-1)"}
    other = {**AUTH, "User-Agent": "ctiwatch/0.1.0 (agent utr-agent-1)"}
    central = {**AUTH, "User-Agent": "ctiwatch/0.1.0 (central)"}
    answers = [(await client.get(LOOKUP, headers=h)).status for h in (agent, other, central)]
    assert answers == [503, 200, 200]


async def test_fault_for_central_only_spares_the_agents(client: TestClient[Any, Any]) -> None:
    body = {"service": "crm", "kind": "outage", "sources": ["central"]}
    assert (await client.post("/admin/faults", json=body)).status == 201
    agent = {**AUTH, "User-Agent": "ctiwatch/0.1.0 (agent ams-agent-1)"}
    curl = {**AUTH, "User-Agent": "curl/8.5.0"}
    answers = [(await client.get(LOOKUP, headers=h)).status for h in (agent, curl, AUTH)]
    assert answers == [200, 503, 503]
