"""Live updates: ``/events`` streams the state version (SSE), ``/fragments/status`` is the
part of the page the script swaps in, and without JavaScript the page reloads itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import prometheus_client
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from auth_helpers import bearer, make_accounts, token_for
from console_scene import Scene, example_scene, real_console, sqlite_url

from ctiwatch.web.app import build_web_app
from ctiwatch.web.events import EventStreams

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with real_console(sqlite_url(tmp_path)) as playing:
        await example_scene(playing)
        yield playing


@pytest.fixture
def streams(scene: Scene) -> EventStreams:
    return EventStreams(scene.pipeline.version, limit=2, heartbeat=0.05, gap=0.0)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, scene: Scene, streams: EventStreams) -> Client:
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(
        scene.console, accounts=accounts, metrics_registry=prometheus_client.CollectorRegistry()
    )
    streams.install(app)
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "wall", "viewer")))


async def next_event(response: ClientResponse) -> list[str]:
    """The lines of the next event or comment (up to the blank line)."""
    lines: list[str] = []
    async with asyncio.timeout(5):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if not line:
                if lines:
                    return lines
                continue
            lines.append(line)


async def test_the_stream_sends_the_state_version_and_then_each_change(
    client: Client, scene: Scene
) -> None:
    response = await client.get("/events")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await next_event(response) == ["retry: 5000"]
    version = scene.pipeline.version.value
    assert await next_event(response) == [f"id: {version}", "event: state", f"data: {version}"]
    await scene.console.acknowledge(2, "Sanne")
    event = await next_event(response)
    while event[0].startswith(":"):  # heartbeats while nothing changed
        event = await next_event(response)
    newer = int(event[-1].removeprefix("data: "))
    assert newer > version and event[1] == "event: state"
    response.close()


async def test_a_quiet_stream_gets_heartbeats(client: Client) -> None:
    response = await client.get("/events")
    await next_event(response)  # retry
    await next_event(response)  # the version now
    assert await next_event(response) == [": heartbeat"]
    response.close()


async def test_streams_beyond_the_cap_are_refused_with_retry_after(
    client: Client, streams: EventStreams
) -> None:
    first, second = await client.get("/events"), await client.get("/events")
    await next_event(first)
    await next_event(second)
    assert streams.open == 2
    refused = await client.get("/events")
    assert refused.status == 503 and refused.headers["Retry-After"] == "30"
    first.close()
    second.close()


async def test_shutting_down_ends_every_stream(client: Client, streams: EventStreams) -> None:
    response = await client.get("/events")
    await next_event(response)
    assert streams.open == 1
    await streams.close()
    assert streams.open == 0
    async with asyncio.timeout(5):
        while await response.content.readline():
            pass  # the stream ends instead of hanging
    response.close()


async def test_the_fragment_is_the_live_part_of_the_page(client: Client) -> None:
    page = await (await client.get("/")).text()
    response = await client.get("/fragments/status")
    fragment = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert fragment.strip() and fragment.strip() in page
    assert "<html" not in fragment and 'id="banner"' in fragment
    assert 'data-tile="acme/acme-ams/click2dial" data-state="down"' in fragment


async def test_without_javascript_the_page_reloads_itself(client: Client) -> None:
    page = await (await client.get("/")).text()
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in page
    assert "reloads every 30 s" in page


@pytest.fixture
async def app_client(aiohttp_client: ClientFactory, scene: Scene) -> Client:
    """The whole app as ``ctiwatch run`` builds it (given the state version), as a viewer."""
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(
        scene.console, accounts=accounts, metrics_registry=None, versions=scene.pipeline.version
    )
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "wall", "viewer")))


async def test_the_app_streams_events_when_given_the_state_version(app_client: Client) -> None:
    response = await app_client.get("/events")
    assert response.status == 200
    assert await next_event(response) == ["retry: 5000"]
    response.close()


async def test_live_fragments_name_the_state_they_answer_at_and_the_one_they_were_built_at(
    app_client: Client, scene: Scene
) -> None:
    for path in ("/fragments/status", "/fragments/wall"):
        response = await app_client.get(path)
        built = (await scene.console.status()).state
        assert response.headers["X-Ctiwatch-State"] == str(scene.pipeline.version.value)
        assert f'data-state="{built}"' in await response.text()
    assert "X-Ctiwatch-State" not in (await app_client.get("/")).headers
