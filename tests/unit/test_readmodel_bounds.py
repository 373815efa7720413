"""The read model's bounds at scale: what it holds stays within the window whether or not a
page reads it, its figures are the window's exactly, and its first load hands the event loop
back between chunks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.readmodel import LiveRollups

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def result(n: int, user: str, at: datetime, *, recognised: bool | None = True) -> ProbeResult:
    return ProbeResult(
        result_id=f"r-{n}",
        target=TargetKey(Service.CRM, "acme", f"loc-{int(user[1:]) % 4}", user),
        at=at,
        ok=True,
        recognised=recognised,
        latency_ms=120.0,
        status=200,
        evidence="",
    )


def test_three_hours_of_results_for_200_users_keep_one_window_of_minutes() -> None:
    live = LiveRollups(HOUR)
    live.start()
    n = 0
    for minute in range(180):  # three hours, nobody reading
        at = START + timedelta(minutes=minute, seconds=7)
        live.observe([result(n := n + 1, f"u{u}", at) for u in range(200)])

    places, user_minutes = live.footprint()
    assert places <= 4 * 62  # 4 places, the window's 61 minutes and the one being filled
    assert user_minutes <= 200 * 62
    now = START + timedelta(minutes=180)
    figures = live.place("acme", "loc-0", Service.CRM, now)
    # At 12:00 the buckets from 11:00 count (start > now - 1 h - 1 min): 60 minutes x 50 users.
    assert (figures.counts.calls, figures.results) == (60 * 50, 60 * 50)
    assert live.user("acme", "loc-1", "u1", Service.CRM, now).counts.calls == 60


def test_figures_count_only_begun_minutes_inside_the_window_and_late_minutes_in_order() -> None:
    live = LiveRollups(HOUR)
    live.start()
    live.observe([result(1, "u0", START + timedelta(minutes=5))])  # ahead of "now" below
    live.observe([result(2, "u0", START - timedelta(minutes=30), recognised=False)])  # late
    live.observe([result(3, "u0", START - timedelta(minutes=90))])  # before the window

    figures = live.user("acme", "loc-0", "u0", Service.CRM, START)
    assert (figures.counts.calls, figures.counts.misses) == (1, 1)
    place = live.place("acme", "loc-0", Service.CRM, START + timedelta(minutes=6))
    assert (place.counts.calls, place.counts.misses, place.latency_p95_ms is not None) == (
        2,
        1,
        True,
    )


async def test_the_first_load_hands_the_loop_back_between_chunks() -> None:
    rows_per_chunk, chunks = 500, 20
    histogram = [0] * 16

    async def minutes() -> AsyncIterator[list[Any]]:
        for c in range(chunks):
            yield [
                ("acme", "loc-0", f"u{c}-{i}", "crm", START, 1, 0, 1, 0, 100.0, 100.0, *histogram)
                for i in range(rows_per_chunk)
            ]

    async def latest() -> AsyncIterator[list[Any]]:
        yield [("acme", "loc-0", "u0-0", "crm", START)]

    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    live = LiveRollups(HOUR)
    beside = asyncio.create_task(other_work())
    await live.load(minutes(), latest())
    beside.cancel()

    assert live.loaded
    assert turns >= chunks  # the loop ran other work between every chunk
    figures = live.place("acme", "loc-0", Service.CRM, START + timedelta(seconds=30))
    assert figures.counts.calls == rows_per_chunk * chunks
    assert live.last_result_at("acme", "loc-0", Service.CRM) == START


async def test_results_stored_while_the_store_is_read_wait_and_are_observed_after() -> None:
    """Pipeline.results_held: a batch that arrives while the read model starts its queries is
    stored and observed after them, so it is counted once (from the pipeline)."""
    from ctiwatch.persist import Pipeline

    stored: list[str] = []

    class Results:
        async def add_many(self, batch: list[ProbeResult]) -> int:
            stored.extend(r.result_id for r in batch)
            return len(batch)

    class Store:
        results = Results()

    class Engine:
        def incidents(self) -> list[object]:
            return []

    class Monitor:
        engine = Engine()

        def observe(self, batch: list[ProbeResult], now: datetime) -> Any:
            raise RuntimeError("not needed here")

    pipeline = Pipeline.__new__(Pipeline)
    Pipeline.__init__(pipeline, Monitor(), Store(), None)  # type: ignore[arg-type]
    seen: list[str] = []
    pipeline.observers.append(lambda batch: seen.extend(r.result_id for r in batch))
    pipeline._apply = _nothing  # type: ignore[method-assign]

    async with pipeline.results_held():
        arriving = asyncio.create_task(pipeline.on_results([result(1, "u0", START)]))
        for _ in range(5):
            await asyncio.sleep(0)
        assert (stored, seen) == ([], [])  # held
    await arriving
    assert (stored, seen) == (["r-1"], ["r-1"])


async def _nothing(batch: list[ProbeResult]) -> None:
    return None


async def test_a_view_is_rendered_once_however_many_requests_wait() -> None:
    from ctiwatch.web.readmodel import FragmentCache, data

    cache = FragmentCache()
    renders = 0
    release = asyncio.Event()

    async def render() -> Any:
        nonlocal renders
        renders += 1
        await release.wait()
        return data("{}")

    waiting = [asyncio.create_task(cache.fetch(7, "status.json", render)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*waiting)

    assert renders == 1
    assert all(a is answers[0] for a in answers)
    assert await cache.fetch(7, "status.json", render) is answers[0]  # cached
    assert renders == 1


async def test_a_rendering_hands_the_event_loop_back_between_its_steps() -> None:
    from ctiwatch.web.readmodel import joined

    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    seen: list[int] = []

    def pieces() -> Any:
        for n in range(5):
            seen.append(ticks)
            yield str(n)

    ticker = asyncio.create_task(ticking())
    await asyncio.sleep(0)
    try:
        assert await joined(pieces(), step=0) == "01234"
    finally:
        ticker.cancel()
    assert all(b > a for a, b in itertools.pairwise(seen))  # the loop ran between
