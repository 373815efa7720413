"""A component that fails is restarted with backoff and reported on /healthz; the process
goes on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from ctiwatch.accounts import Accounts
from ctiwatch.clock import FixedClock
from ctiwatch.storage import Store
from ctiwatch.supervisor import ComponentHealth, Supervisor
from ctiwatch.web.app import build_web_app

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


async def test_a_failing_component_is_restarted_with_growing_delays_until_it_runs() -> None:
    clock = FixedClock(T0)
    supervisor = Supervisor(clock, initial=1.0, maximum=60.0)
    starts: list[datetime] = []

    async def component() -> None:
        starts.append(clock.now())
        if len(starts) <= 3:
            raise OverflowError("date value out of range")

    await supervisor.keep("mqtt", component)

    gaps = [(b - a).total_seconds() for a, b in pairwise(starts)]
    assert len(starts) == 4
    assert 0.5 <= gaps[0] <= 1.0 and 1.0 <= gaps[1] <= 2.0 and 2.0 <= gaps[2] <= 4.0
    assert supervisor.health() == [ComponentHealth("mqtt", True, 3)]
    assert supervisor.problems() == []


async def test_healthz_answers_503_naming_a_component_waiting_to_restart(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    supervisor = Supervisor(clock, initial=1.0, maximum=60.0)
    failed = asyncio.Event()
    release = asyncio.Event()

    async def component() -> None:
        failed.set()
        raise OverflowError("date value out of range")

    async def slow_sleep(seconds: float) -> None:
        await release.wait()

    clock.sleep = slow_sleep  # type: ignore[method-assign]
    kept = asyncio.create_task(supervisor.keep("mqtt", component))
    await failed.wait()
    await asyncio.sleep(0)
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path}/ctiwatch.db") as store:
        accounts = Accounts(store, clock)
        app = build_web_app(
            _NoConsole(), accounts=accounts, metrics_registry=None, health=supervisor.problems
        )
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/healthz")  # public: no login
            text = await response.text()
    kept.cancel()

    assert response.status == 503
    assert text == "mqtt: failed (OverflowError: date value out of range); restart 1 pending"


class _NoConsole:
    pass
