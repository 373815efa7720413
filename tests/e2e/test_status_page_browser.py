"""The status page in a real browser: headless Chromium loads it from a local port, runs its
script (which fetches the status fragment) and we read the DOM it ends with, and a screenshot.

Chromium is opened on the wall screen's kiosk link (``/kiosk/<token>``, a read-only viewer
token): no login form, the operators' overview, live (the kiosk polls its own fragment,
``/kiosk/<token>/fragment``).

Chromium's ``--virtual-time-budget`` runs the page's timers in virtual time, so the 10-second
refresh happens without waiting 10 seconds. Skipped when Chromium is missing, failed under CI
(``tests/ci.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from auth_helpers import make_accounts
from ci import unavailable
from console_scene import Scene, example_scene, real_console, sqlite_url

from classifier.observation import Service
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.web.app import build_web_app


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("chromium is not installed (make system-deps installs it)")


async def serve(
    scene: Scene, on_status_read: Callable[[int], Awaitable[None]] | None = None
) -> AsyncIterator[str]:
    """Serve the console on a free port; yields the URL of a kiosk link to its overview.
    ``on_status_read(n)`` runs before the n-th poll of the kiosk's fragment."""
    accounts = make_accounts(scene.store, scene.clock)
    secret, _ = await accounts.create_token("wall", "viewer", kiosk=True, by="test")
    service: ConsoleServiceImpl = scene.console
    app = build_web_app(
        service, accounts=accounts, metrics_registry=None, versions=scene.pipeline.version
    )
    reads = 0

    @web.middleware
    async def polls(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal reads
        if request.path.endswith("/fragment") and on_status_read is not None:
            reads += 1
            await on_status_read(reads)
        return await handler(request)

    app.middlewares.insert(0, polls)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/kiosk/{secret}"
    finally:
        await runner.cleanup()


async def run_chromium(profile: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(90):
            stdout, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0
    return stdout.decode()


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    async with real_console(sqlite_url(tmp_path)) as scene:
        await example_scene(scene)
        async for url in serve(scene):
            yield url


async def test_status_page_dom_after_its_script_ran(base_url: str, tmp_path: Path) -> None:
    dom = await run_chromium(
        tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", base_url
    )
    assert 'data-live="ok"' in dom  # the script fetched the fragment and said so
    assert "live · refreshes every 10 s" in dom
    assert 'data-tile="acme/acme-ams/click2dial" data-state="down"' in dom
    assert 'data-tile="globex/globex-utr/crm" data-state="ok"' in dom
    assert '<tr class="incident" data-incident="2" data-priority="1">' in dom
    assert "#2 Click2Dial unavailable at acme-ams (all users)" in dom
    assert 'id="banner" data-state="down"' in dom


async def test_status_page_shows_a_change_without_reloading(tmp_path: Path) -> None:
    polls: list[int] = []
    async with real_console(sqlite_url(tmp_path)) as scene:
        await example_scene(scene)

        async def recover_on_second_poll(n: int) -> None:
            polls.append(n)
            if n == 2:  # three good rounds of every user: the location is up again
                await scene.rounds(
                    "acme", "acme-ams", ["alice", "anna"], Service.CLICK2DIAL, ok=True, count=3
                )

        async for url in serve(scene, recover_on_second_poll):
            # The first poll runs at load, the second 10 s (virtual) later and sees the change.
            dom = await run_chromium(
                tmp_path / "profile", "--virtual-time-budget=15000", "--dump-dom", url
            )
    assert polls[:2] == [1, 2]
    assert 'data-tile="acme/acme-ams/click2dial" data-state="ok"' in dom
    assert 'data-tile="acme/acme-ams/click2dial" data-state="down"' not in dom
    assert 'data-live="ok"' in dom


async def test_a_polling_page_catches_up_with_figures_built_behind_the_view_it_was_given(
    tmp_path: Path,
) -> None:
    """The kiosk polls every 10 s (real time here: Chromium's virtual time would run ahead of
    the server's work behind the view). Given the view before the new figures, it asks again
    a second later until the fragment was built at the state its answer named: well before
    the poll after next (without that, the figures showed on the third poll, 30 s in)."""
    driver = pytest.importorskip("playwright.async_api")
    async with real_console(sqlite_url(tmp_path)) as scene:
        await example_scene(scene)
        foot = '.tile[data-tile="globex/globex-utr/crm"] .tile-foot'
        async for url in serve(scene):
            async with driver.async_playwright() as playing:
                browser = await playing.chromium.launch(
                    executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                try:
                    page = await browser.new_page()
                    await page.goto(url)
                    await page.wait_for_selector('body[data-live="ok"]')
                    assert "30 calls" not in await page.inner_text(foot)
                    await scene.calls(
                        "globex", "globex-utr", "carol", recognised=30, unrecognised=0
                    )
                    scene.clock.set(scene.clock.now() + timedelta(seconds=2))
                    await page.wait_for_function(
                        "([selector, text]) => document.querySelector(selector)"
                        ".textContent.includes(text)",
                        arg=[foot, "30 calls"],
                        timeout=25_000,
                    )
                finally:
                    await browser.close()


async def test_status_page_screenshot(base_url: str, tmp_path: Path) -> None:
    shot = tmp_path / "status.png"
    await run_chromium(
        tmp_path / "profile",
        "--virtual-time-budget=3000",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        base_url,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 900)
    if artifacts := os.environ.get("CTIWATCH_SCREENSHOTS"):  # keep it to look at
        await asyncio.to_thread(keep, shot, Path(artifacts))


def keep(shot: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, folder / shot.name)


async def test_the_live_page_catches_up_with_figures_built_behind_the_view_it_was_given(
    tmp_path: Path,
) -> None:
    """Only figures moved (answered calls came in): the page hears the new state over
    ``/events`` and is first given the view before it (the next is built and rendered behind
    it), then asks again until the fragment says it was built at the state it heard."""
    driver = pytest.importorskip("playwright.async_api")
    async with real_console(sqlite_url(tmp_path)) as scene:
        await example_scene(scene)
        accounts = make_accounts(scene.store, scene.clock)
        token, _ = await accounts.create_token("ops", "viewer", by="test")
        before = await scene.console.status()
        calls = next(
            t.calls
            for c in before.customers
            if c.id == "globex"
            for loc in c.locations
            for t in loc.services
            if t.service == "crm"
        )
        app = build_web_app(
            scene.console,
            accounts=accounts,
            metrics_registry=None,
            versions=scene.pipeline.version,
        )
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        tile = '.tile[data-tile="globex/globex-utr/crm"] .tile-foot'
        try:
            async with driver.async_playwright() as playing:
                browser = await playing.chromium.launch(
                    executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                try:
                    context = await browser.new_context(
                        extra_http_headers={"Authorization": f"Bearer {token}"}
                    )
                    page = await context.new_page()
                    await page.goto(f"http://{host}:{port}/")
                    await page.wait_for_selector('body[data-live="ok"]')
                    assert f"{calls + 30} calls" not in await page.inner_text(tile)
                    await scene.calls(
                        "globex", "globex-utr", "carol", recognised=30, unrecognised=0
                    )
                    scene.clock.set(scene.clock.now() + timedelta(seconds=2))
                    await page.wait_for_function(
                        "([selector, text]) => document.querySelector(selector)"
                        ".textContent.includes(text)",
                        arg=[tile, f"{calls + 30} calls"],
                        timeout=20_000,
                    )
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
