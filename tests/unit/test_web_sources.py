"""Sources on the real console service (``console_scene``): which source saw what, on the status
page, in an incident's scope (web, JSON API), and a forced resolve's "follows incident N" kept
across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from console_scene import NOW, Scene, real_console

from classifier.observation import Service

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
