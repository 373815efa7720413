"""The pages in headless Chromium driven by playwright (Debian's ``chromium`` through
``executable_path``; never a downloaded browser): a customer's page names no other customer,
at 390 px wide the status page, an incident page, a customer page and the KPI page do not
scroll sideways, and at 1280 px the console's tables fit their cards. Screenshots go to
``tests/e2e/artifacts/`` (git-ignored; ``CTIWATCH_SCREENSHOTS`` names another folder, e.g.
``docs/screenshots`` to refresh the README's).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from auth_helpers import PASSWORD, add_user, make_accounts
from console_scene import NOW, Scene, example_scene, kpi_scene, real_console, sqlite_url
from test_status_page_browser import chromium

from classifier.observation import Service
from ctiwatch.custpages import CustomerPagesImpl
from ctiwatch.web.app import build_web_app
from ctiwatch.web.service import WindowRequest

ARTIFACTS = Path(os.environ.get("CTIWATCH_SCREENSHOTS") or Path(__file__).parent / "artifacts")
OTHER_THAN_ACME = ("Globex", "globex", "Utrecht", "bob", "carol", "agent-utr-1", "HTTP 503")
LONG = (
    "Dial requests fail at https://api.cloudcti.example/v2/click2dial/"
    "dial?user=alice&location=acme-ams&trace=0123456789abcdef0123456789abcdef0123456789"
)

playwright = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, Scene]]:
    async with real_console(sqlite_url(tmp_path)) as scene:
        await example_scene(scene)
        await scene.console.update(2, "Sanne", LONG)
        await scene.console.schedule_maintenance(
            WindowRequest(
                NOW + timedelta(hours=1),
                NOW + timedelta(hours=2),
                ["crm"],
                ["acme"],
                "CRM hotfix",
                emergency=True,
                justification="calls drop after 09:00",
            ),
            "Sanne",
        )
        async for base in serve(scene):
            yield base, scene


async def serve(scene: Scene) -> AsyncIterator[str]:
    pages = CustomerPagesImpl(scene.config, scene.pipeline, scene.console)
    accounts = make_accounts(scene.store, scene.clock)
    await add_user(accounts, "sanne", "viewer")
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=None, customers=pages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = chromium()
    async with playwright.async_playwright() as driver:
        launched = await driver.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def shot(page: Any, name: str) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def log_in(page: Any, base: str, then: str) -> None:
    """Through the login form, as a person would; lands on ``then``."""
    await page.goto(f"{base}/login?next={then}")
    await page.fill("#username", "sanne")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + then)


async def customer_link(scene: Scene, customer: str) -> str:
    token = await scene.store.customer_links.make(customer, NOW, "test", rotate=True)
    return f"/status/{token}"


async def test_a_customer_opens_its_page_and_sees_no_other_customer(
    site: tuple[str, Scene], browser: Any
) -> None:
    base, scene = site
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(base + await customer_link(scene, "acme"))
    text = await page.inner_text("body")
    assert "ACME B.V.: service status" in text
    assert "Click2Dial unavailable in Amsterdam" in text
    assert "Emergency maintenance: calls drop after 09:00" in text
    for other in OTHER_THAN_ACME:
        assert other not in text, other
    bars = await page.locator(".service .bars").first.locator(".bar").count()
    assert bars == 90
    await shot(page, "customer.png")


@pytest.mark.parametrize("where", ["status", "incident", "customer", "kpi"])
async def test_at_390_px_a_page_does_not_scroll_sideways(
    site: tuple[str, Scene], browser: Any, where: str
) -> None:
    base, scene = site
    path = {"status": "/", "incident": "/incidents/2", "kpi": "/reports/kpi"}.get(
        where
    ) or await customer_link(scene, "acme")
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    if where == "customer":
        await page.goto(base + path)  # the link is all a customer needs
    else:
        await log_in(page, base, path)
    await page.wait_for_load_state("load")
    width = await page.evaluate("document.documentElement.scrollWidth")
    wide = await page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .slice(0, 5).map(e => e.tagName + '.' + e.className)"""
    )
    await shot(page, f"{where}-390.png")
    assert width <= 390, wide


@pytest.fixture
async def kpi_site(tmp_path: Path) -> AsyncIterator[str]:
    async with real_console(sqlite_url(tmp_path)) as scene:
        await kpi_scene(scene)
        async for base in serve(scene):
            yield base


async def wide_tables(page: Any) -> list[str]:
    """Tables wider than the card that holds them (which would scroll inside it)."""
    return list(
        await page.evaluate(
            """() => [...document.querySelectorAll('.table-scroll')]
                .filter(e => e.scrollWidth > e.clientWidth + 0.5)
                .map(e => (e.id || e.className) + ': ' + e.scrollWidth + ' > ' + e.clientWidth)"""
        )
    )


@pytest.mark.parametrize("where", ["status", "incident", "maintenance"])
async def test_at_1280_px_the_console_pages_tables_fit_their_cards(
    site: tuple[str, Scene], browser: Any, where: str
) -> None:
    base, _ = site
    path = {"status": "/", "incident": "/incidents/2", "maintenance": "/maintenance"}[where]
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await log_in(page, base, path)
    await page.wait_for_load_state("load")
    await shot(page, f"{where}.png")
    assert await wide_tables(page) == []


async def test_at_1280_px_the_kpi_report_fits_and_shows_the_missed_p1(
    kpi_site: str, browser: Any
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await log_in(page, kpi_site, "/reports/kpi")
    await page.wait_for_load_state("load")
    await shot(page, "kpi.png")
    assert await wide_tables(page) == []
    verdicts = await page.locator("table.kpi [data-cell=target]").all_inner_texts()
    assert verdicts == ["✗ MISSED", "✓ met", "✓ met", "✓ met"]


async def test_the_wall_screen_shows_at_least_50_user_services_on_a_1920_by_1080_screen(
    tmp_path: Path, browser: Any
) -> None:
    # 3 customers x 2 locations x 5 users x 2 services: 60 user-services.
    topology = {
        "customers": [
            {
                "id": f"cust{c}",
                "name": f"Customer {c}",
                "locations": [
                    {
                        "id": f"cust{c}-loc{n}",
                        "name": f"Site {n}",
                        "users": [f"user{u}" for u in range(5)],
                    }
                    for n in range(2)
                ],
            }
            for c in range(3)
        ]
    }
    async with real_console(sqlite_url(tmp_path), topology=topology) as scene:
        await scene.rounds("cust0", "cust0-loc0", [f"user{u}" for u in range(5)],
                           Service.CLICK2DIAL, ok=False, count=3)  # fmt: skip
        await scene.rounds("cust1", "cust1-loc1", ["user1"], Service.CRM, ok=True, count=2)
        async for base in serve(scene):
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await log_in(page, base, "/wall")
            boxes = await page.evaluate(
                """() => [...document.querySelectorAll('[data-user-tile]')].map(e => {
                    const r = e.getBoundingClientRect();
                    const size = getComputedStyle(e.querySelector('.who')).fontSize;
                    return [r.bottom, parseFloat(size), e.getAttribute('data-state'), e.innerText];
                })"""
            )
            await shot(page, "wall-1920.png")
    assert len(boxes) == 60
    on_screen = [b for b in boxes if b[0] <= 1080]
    assert len(on_screen) >= 50
    assert min(b[1] for b in boxes) >= 18  # read at a distance
    down = [b for b in boxes if b[2] == "down"]
    assert len(down) == 5 and all("DOWN" in b[3] for b in down)  # colour and text
    assert any(b[2] == "ok" and "OPERATIONAL" in b[3] for b in boxes)
