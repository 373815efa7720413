"""The read model behind the status page and ``/api/v1/status``: built from memory once per
state version, never ticking the pipeline, never reading raw results per request."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from console_scene import NOW, Scene, example_scene, real_console, sqlite_url
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.observation import Service
from ctiwatch.readmodel import StateVersion
from ctiwatch.web.readmodel import (
    SLOT,
    FragmentCache,
    Rendered,
    crc32_combine,
    data,
    framed,
)


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with real_console(sqlite_url(tmp_path)) as playing:
        await example_scene(playing)
        yield playing


def tile(view: Any, customer: str, service: str) -> Any:
    found = next(c for c in view.customers if c.id == customer)
    return next(t for t in found.locations[0].services if t.service == service)


async def test_the_status_is_built_once_per_state_version_without_reading_results(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await scene.console.status()

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a read of the status must not query the results")

    for name in ("rollups", "recognition_rate", "call_counts", "latest", "history"):
        monkeypatch.setattr(scene.store.results, name, refused)
    again = await scene.console.status()
    assert again is first and again.version == first.version


async def test_a_persons_action_shows_on_the_next_read(scene: Scene) -> None:
    before = await scene.console.status()
    assert [i.status for i in before.open_incidents] == ["open"]
    await scene.console.acknowledge(2, "Sanne")
    after = await scene.console.status()
    assert [i.status for i in after.open_incidents] == ["acknowledged"]
    assert after.version is not None and before.version is not None
    assert after.version > before.version


async def test_reading_the_status_never_ticks_the_pipeline(scene: Scene) -> None:
    scene.clock.set(datetime(2026, 12, 1, 12, 31, tzinfo=UTC))  # response was due 13:30 local
    view = await scene.console.status()
    assert view.open_incidents[0].breaches == ()
    detail = await scene.console.incident(2)
    assert detail is not None and "response_breach" not in [e.kind for e in detail.timeline]
    await scene.pipeline.tick()  # what the timers task does when the deadline is due
    view = await scene.console.status()
    assert "response" in view.open_incidents[0].breaches


async def test_new_results_move_the_figures_from_memory_as_the_stored_rollups_do(
    scene: Scene,
) -> None:
    await scene.calls("globex", "globex-utr", "carol", recognised=30, unrecognised=0)
    scene.clock.set(NOW + timedelta(seconds=2))  # figures alone rebuild at most every second
    view = await scene.console.status()
    stored = await scene.store.results.recognition_rate(
        "globex", "globex-utr", NOW - timedelta(hours=1), NOW + timedelta(seconds=2), Service.CRM
    )
    shown = tile(view, "globex", "crm")
    assert (shown.calls, shown.recognition_rate) == (stored.calls, stored.rate) == (30, 1.0)
    assert tile(view, "acme", "crm").calls == 112


async def test_a_restarted_console_starts_its_figures_from_the_store(scene: Scene) -> None:
    before = tile(await scene.console.status(), "acme", "crm")
    console = await scene.restart()
    after = tile(await console.status(), "acme", "crm")
    assert (after.calls, after.recognition_rate, after.last_probe_at, after.latency_p95_ms) == (
        before.calls,
        before.recognition_rate,
        before.last_probe_at,
        before.latency_p95_ms,
    )
    assert after.calls == 112


async def test_figures_leave_the_window_as_time_passes(scene: Scene) -> None:
    scene.clock.set(NOW + timedelta(hours=1))
    view = await scene.console.status()
    assert (tile(view, "acme", "crm").calls, tile(view, "acme", "crm").recognition_rate) == (
        0,
        None,
    )


async def test_a_state_version_wakes_whoever_waits_for_it() -> None:
    version = StateVersion()
    assert await version.wait_after(0, within=0.0) == 0
    version.bump(major=False)
    assert (version.value, version.major) == (1, 0)
    assert await version.wait_after(0, within=5.0) == 1


async def test_a_users_tile_and_row_follow_its_new_results_between_builds(scene: Scene) -> None:
    def carol(view: Any) -> tuple[Any, Any]:
        found = next(
            u for u in view.users if (u.customer, u.user, u.service) == ("globex", "carol", "crm")
        )
        row = next(
            r
            for r in view.recognition
            if (r.level, r.customer, r.name) == ("user", "globex", "carol")
        )
        return found, row

    before_tile, before_row = carol(await scene.console.status())
    await scene.calls("globex", "globex-utr", "carol", recognised=3, unrecognised=1)
    scene.clock.set(NOW + timedelta(seconds=2))
    view = await scene.console.caught_up()
    after_tile, after_row = carol(view)
    assert (after_row.calls - before_row.calls, after_row.misses - before_row.misses) == (4, 1)
    assert after_tile.recognition_rate == after_row.rate != before_tile.recognition_rate
    scene.clock.set(NOW + timedelta(hours=1, minutes=2))  # the calls left the window
    assert carol(await scene.console.status())[1].calls == 0


async def test_new_figures_are_built_behind_the_served_view_and_nobody_waits_for_them(
    scene: Scene,
) -> None:
    before = await scene.console.status()
    await scene.calls("globex", "globex-utr", "carol", recognised=3, unrecognised=1)
    scene.clock.set(NOW + timedelta(seconds=2))
    served = await scene.console.status()  # only figures moved: the view there is, at once
    assert served is before
    after = await scene.console.caught_up()  # ... and the next one was being built behind it
    assert after.version is not None and before.version is not None
    assert after.version > before.version and after.epoch == before.epoch
    assert tile(after, "globex", "crm").calls == tile(before, "globex", "crm").calls + 4


async def test_a_view_older_than_its_figures_may_lag_is_built_before_it_is_served(
    scene: Scene,
) -> None:
    before = await scene.console.status()
    await scene.calls("globex", "globex-utr", "carol", recognised=3, unrecognised=1)
    scene.clock.set(NOW + timedelta(seconds=7))  # beyond a second's figures plus 5 s of age
    after = await scene.console.status()
    assert after.epoch != before.epoch  # waited for: what renders it is waited for too
    assert tile(after, "globex", "crm").calls == tile(before, "globex", "crm").calls + 4


async def test_an_incident_change_begins_an_epoch_every_reader_waits_for(scene: Scene) -> None:
    before = await scene.console.status()
    scene.clock.set(NOW + timedelta(seconds=2))
    await scene.console.acknowledge(2, "Sanne")
    after = await scene.console.status()
    assert after.epoch != before.epoch
    assert [i.status for i in after.open_incidents] == ["acknowledged"]


async def test_a_view_names_the_state_version_its_build_began_at(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = scene.console._build_status

    async def results_stored_meanwhile(now: datetime) -> Any:
        view = await build(now)
        scene.pipeline.version.bump(major=False)
        return view

    monkeypatch.setattr(scene.console, "_build_status", results_stored_meanwhile)
    scene.clock.set(NOW + timedelta(minutes=1))
    began = scene.pipeline.version.value
    view = await scene.console.status()
    assert view.state == began < scene.pipeline.version.value  # its page will ask again


# --- renderings per view: one per version, the last of an epoch while the next renders ------


async def test_one_rendering_per_view_however_many_ask_for_it_at_once() -> None:
    cache, made = FragmentCache(), []

    async def render() -> Rendered:
        made.append(1)
        await asyncio.sleep(0)
        return data("one")

    found = await asyncio.gather(*(cache.fetch(1, "page", render, epoch=1) for _ in range(5)))
    assert made == [1] and {f.body for f in found} == {b"one"}


async def test_a_view_of_the_same_epoch_is_answered_with_the_last_rendering_while_it_renders() -> (
    None
):
    cache = FragmentCache()
    await cache.fetch(1, "page", lambda: _rendered("v1"), epoch=7)
    release = asyncio.Event()

    async def slow() -> Rendered:
        await release.wait()
        return data("v2")

    # View 2 differs from view 1 only in figures (epoch 7): answered with view 1's rendering
    # at once, view 2 rendered behind it.
    assert (await cache.fetch(2, "page", slow, epoch=7)).body == b"v1"
    assert (await cache.fetch(2, "page", slow, epoch=7)).body == b"v1"
    release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert (await cache.fetch(2, "page", slow, epoch=7)).body == b"v2"


async def test_the_first_rendering_of_a_new_epoch_is_waited_for() -> None:
    cache = FragmentCache()
    await cache.fetch(1, "page", lambda: _rendered("v1"), epoch=7)
    assert (await cache.fetch(2, "page", lambda: _rendered("v2"), epoch=8)).body == b"v2"
    assert (await cache.fetch(3, "page", lambda: _rendered("v3"), epoch=None)).body == b"v3"


async def test_renderings_of_an_older_epoch_are_let_go_when_a_new_epoch_is_asked_for() -> None:
    cache = FragmentCache()
    await cache.fetch(1, "wall", lambda: _rendered("wall v1"), epoch=7)
    await cache.fetch(2, "page", lambda: _rendered("page v2"), epoch=8)
    assert [name for name in cache._last] == ["page"]


async def test_a_failed_rendering_is_logged_and_the_next_request_renders_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = FragmentCache()
    await cache.fetch(1, "page", lambda: _rendered("v1"), epoch=7)

    async def broken() -> Rendered:
        raise RuntimeError("template broke")

    assert (await cache.fetch(2, "page", broken, epoch=7)).body == b"v1"
    for _ in range(3):
        await asyncio.sleep(0)
    assert "rendering page failed: template broke" in caplog.text
    assert (await cache.fetch(2, "page", lambda: _rendered("v2"), epoch=7)).body == b"v1"
    for _ in range(3):
        await asyncio.sleep(0)
    assert (await cache.fetch(2, "page", lambda: _rendered("v2"), epoch=7)).body == b"v2"


async def _rendered(text: str) -> Rendered:
    return data(text)


# --- a shared page with the viewer's part spliced in -------------------------------------------


@given(
    head=st.binary(max_size=3_000),
    viewer=st.binary(max_size=70_000),
    tail=st.binary(max_size=3_000),
)
@settings(max_examples=60, deadline=None)
def test_crc32_of_a_whole_is_combined_from_its_parts(
    head: bytes, viewer: bytes, tail: bytes
) -> None:
    whole = zlib.crc32(head + viewer + tail)
    first = crc32_combine(zlib.crc32(head), zlib.crc32(viewer), len(viewer))
    assert crc32_combine(first, zlib.crc32(tail), len(tail)) == whole


@given(viewer=st.text(max_size=70_000), filler=st.integers(min_value=0, max_value=5_000))
@settings(max_examples=40, deadline=None)
def test_a_framed_page_is_one_valid_gzip_stream_with_the_viewers_part_inside(
    viewer: str, filler: int
) -> None:
    html = f"<html><style>b {{}}</style>{'ab' * filler}{SLOT}<p>{'xyz' * filler}</p></html>"
    shared = framed(html)
    gzipped = shared.gzipped(viewer.encode())
    expected = html.replace(SLOT, viewer).encode()
    assert gzip.decompress(gzipped) == expected  # checks the CRC-32 and the size
    strict = zlib.decompressobj(wbits=31)
    assert strict.decompress(gzipped) == expected and strict.eof and not strict.unused_data
    assert shared.policy is not None and "'sha256-" in shared.policy


def test_a_framed_page_has_exactly_one_viewer_slot() -> None:
    with pytest.raises(ValueError, match="exactly one viewer slot"):
        framed("<html></html>")
    with pytest.raises(ValueError, match="exactly one viewer slot"):
        framed(f"<html>{SLOT}{SLOT}</html>")
