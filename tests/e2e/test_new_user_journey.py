"""The new user's journey of issue 11's "Done when", in headless Chromium against a real
``ctiwatch run`` (the in-process app on its own ports: the demo configuration with the built-in
simulator and the demo fakes, SQLite in a temporary folder, the demo admin from the config).

Log in through the form, see every customer's tiles, break a simulated service through the
simulator's admin API and watch the incident appear on the open page without a reload,
acknowledge it and resolve it through its forms, schedule a maintenance window in an evening
two days ahead (listed, and the customer's notice in the fake mailbox) and see one inside working
hours refused with the reason, and open a customer's page by the link ``ctiwatch customers link``
prints and see no other customer; then the month's SLA KPIs, reached from the navigation. A
screenshot of every step goes to ``tests/e2e/artifacts/``
(``CTIWATCH_SCREENSHOTS`` names another folder).

The service runs on the real clock, so the maintenance times are chosen relative to now, and
every wait polls a real condition with a deadline (playwright's waits), never a fixed sleep.
Skipped when Chromium is missing, failed under CI (``tests/ci.py``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from integration.running_app import WAIT_SECONDS, api_headers, free_ports, start, until
from test_status_page_browser import chromium

from ctiwatch.app import Ctiwatch
from ctiwatch.config import load_config, load_yaml
from sla.calendar import SupportCalendar

playwright = pytest.importorskip("playwright.async_api")

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "ctiwatch.yaml"
ARTIFACTS = Path(os.environ.get("CTIWATCH_SCREENSHOTS") or Path(__file__).parent / "artifacts")
ADMIN, PASSWORD = "admin", "ctiwatch-demo"  # what the demo config (and the README) say
WAIT_MS = WAIT_SECONDS * 1000
CUSTOMERS = {"acme": "ACME B.V.", "globex": "Globex Nederland", "initech": "Initech"}


def journey_config(tmp_path: Path) -> Path:
    """The demo configuration on free ports, SQLite in ``tmp_path``, probing every second."""
    web, simulator, twilio, smtp = free_ports(4)
    data = load_yaml(DEMO_CONFIG)
    data["probes"].update(
        base_url=f"http://127.0.0.1:{simulator}", interval="1s", timeout="1s", retries=0
    )
    data["alerting"]["twilio"].update(
        base_url=f"http://127.0.0.1:{twilio}", webhook_base_url=f"http://127.0.0.1:{web}"
    )
    data["alerting"]["smtp"]["port"] = smtp
    data["storage"]["url"] = f"sqlite+aiosqlite:///{tmp_path}/ctiwatch.db"
    data["mqtt"]["enabled"] = False  # the journey needs no agents
    data["web"]["port"] = web
    data["simulator"]["port"] = simulator
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Ctiwatch, Path]]:
    path = journey_config(tmp_path)
    app = Ctiwatch(load_config(path, environ={}))  # the documented demo password
    stop = asyncio.Event()
    task = await start(app, stop)
    try:
        yield app, path
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)


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
    await page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"), full_page=True)


def next_working_day(calendar: SupportCalendar, after: date) -> date:
    day = after
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def local_input(day: date, at: time) -> str:
    """The value of a ``datetime-local`` input."""
    return datetime.combine(day, at).strftime("%Y-%m-%dT%H:%M")


async def fill_window(page: Any, day: date, start: time, end: time, reason: str) -> None:
    await page.goto(page.url.split("/maintenance")[0] + "/maintenance")
    await page.fill("#start", local_input(day, start))
    await page.fill("#end", local_input(day, end))
    await page.check("#schedule input[name=services][value=crm]")
    await page.check("#schedule input[name=customers][value=acme]")
    await page.fill("#reason", reason)
    await page.click("#schedule button[type=submit]")
    await page.wait_for_load_state("load")


async def customer_link(config: Path, customer: str) -> str:
    """What ``ctiwatch customers link <customer>`` prints: the URL of the customer's page."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctiwatch", "customers", "link", customer,
        "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CTIWATCH_DEMO_PASSWORD": PASSWORD},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
    assert process.returncode == 0, err.decode()
    return out.decode().strip().splitlines()[-1]


async def test_a_new_user_logs_in_follows_an_incident_live_schedules_maintenance_and_opens_a_customer_page(  # noqa: E501
    running: tuple[Ctiwatch, Path], browser: Any
) -> None:
    app, config_path = running
    base = app.web_url
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)

    # Log in through the form with what the README says.
    await page.goto(f"{base}/")
    await page.wait_for_url(lambda url: "/login" in url)
    await shot(page, "1-login")
    await page.fill("#username", ADMIN)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")  # the status page (a cached page, the same for all)

    # The demo state: every customer with its tiles, probed as ok.
    for customer, name in CUSTOMERS.items():
        card = page.locator(f"article.customer[data-customer={customer}]")
        assert name in await card.inner_text()
        assert await card.locator(".tile").count() > 0
    await page.wait_for_selector(".tile[data-state=ok]", state="attached")
    await shot(page, "2-demo-state")

    # Break a simulated service; the incident appears on the open page, without a reload.
    await page.evaluate("window.__notReloaded = true")
    fault = {"service": "click2dial", "customer": "acme", "location": "acme-ams", "kind": "outage"}
    async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
        async with http.post(f"{app.simulator_url}/admin/faults", json=fault) as response:
            assert response.status == 201, await response.text()
        row = page.locator("tr.incident[data-incident='1']")
        await row.wait_for()
        assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        assert "ACME" in await row.inner_text()
        down = ".tile[data-tile='acme/acme-ams/click2dial'][data-state=down]"
        await page.locator(down).wait_for()
        await shot(page, "3-incident-live")

        # Open it and acknowledge it through the form.
        await row.locator("a[href='/incidents/1']").click()
        await page.wait_for_url(f"{base}/incidents/1")
        await page.click("#actions button[formaction='/incidents/1/ack']")
        await page.wait_for_load_state("load")
        assert "acknowledged" in (await page.inner_text("body")).lower()
        assert await page.locator("#actions button[formaction='/incidents/1/ack']").count() == 0
        await shot(page, "4-acknowledged")

        # Resolve it: the fault still holds, so the page asks for a reason and resolves anyway.
        await page.click("#actions button[formaction='/incidents/1/resolve']")
        await page.wait_for_selector("#confirm-resolve")
        await shot(page, "5-resolve-asks-why")
        await page.fill("#resolve_reason", "the simulator's fault is being cleared by hand")
        await page.click("#confirm-resolve button[type=submit]")
        await page.wait_for_load_state("load")
        async with http.get(f"{app.web_url}/api/v1/incidents/1") as response:
            incident = await response.json()
        assert incident["status"] == "resolved", incident
        assert incident["resolved_at"] is not None
        await shot(page, "6-resolved")
        async with http.delete(f"{app.simulator_url}/admin/faults") as response:
            assert response.status == 200, await response.text()

    # Maintenance: an evening two days ahead is listed; a morning is refused with the reason.
    calendar = SupportCalendar()  # the demo's calendar: Europe/Amsterdam, 08:30-17:00, NL
    today = calendar.local(app.clock.now()).date()
    evening = today + timedelta(days=3)  # 19:00 three days on is more than 48 h away
    await page.goto(f"{base}/maintenance")
    assert (await page.get_attribute("#whoami", "data-role")) == "admin"
    await fill_window(page, evening, time(19, 0), time(21, 0), "CRM connector upgrade")
    listed = page.locator("#windows tr[data-window]")
    assert await listed.count() == 1
    assert "CRM connector upgrade" in await listed.first.inner_text()
    await shot(page, "7-window-scheduled")

    working = next_working_day(calendar, today + timedelta(days=3))
    await fill_window(page, working, time(10, 0), time(11, 0), "During office hours")
    error = await page.inner_text(".error, [role=alert]")
    assert "support hours" in error or "08:30" in error, error
    assert await page.locator("#windows tr[data-window]").count() == 1  # nothing was added
    await shot(page, "8-window-refused")

    # The customer's notice in the fake mailbox.
    await page.goto(f"{base}/fakes/mail")
    mail = page.get_by_text("it@acme.example").first
    await mail.wait_for()
    assert "CRM connector upgrade" in await page.inner_text("body")
    await shot(page, "9-mailbox")

    # A customer's page by its link: no login, no other customer.
    link = await customer_link(config_path, "acme")
    assert link.startswith(f"{base}/status/"), link
    outsider = await browser.new_context(viewport={"width": 1280, "height": 900})
    customer_page = await outsider.new_page()
    await customer_page.goto(link)
    text = await customer_page.inner_text("body")
    assert "ACME B.V." in text
    assert "CRM connector upgrade" in text  # the upcoming window
    for other in ("Globex", "Initech", "Utrecht", "Eindhoven", "frank", "judy"):
        assert other not in text, other
    await shot(customer_page, "10-customer-page")
    await outsider.close()

    # The month's SLA KPIs from the console's navigation: the P1 counted, its CSV a click away.
    await page.goto(f"{base}/")
    await page.click("nav a[href='/reports/kpi']")
    await page.wait_for_url(f"{base}/reports/kpi")
    p1 = page.locator("table.kpi tr[data-priority='1']")
    assert await p1.locator("[data-cell=incidents]").inner_text() == "1"
    assert await p1.locator("[data-cell=resolved]").inner_text() == "1"
    month = calendar.local(app.clock.now()).strftime("%Y-%m")
    assert await page.get_attribute("#csv", "href") == f"/reports/kpi.csv?month={month}"
    await shot(page, "11-kpi")


async def test_the_oncall_person_replies_from_the_fake_phone_and_sees_it_in_their_thread(
    running: tuple[Ctiwatch, Path], browser: Any
) -> None:
    """The page goes queued -> sent -> delivered; ``ACK 1`` typed into the reply box appears
    in that person's thread beside the page, with ctiwatch's answer."""
    app, _ = running
    base, oncall = app.web_url, "+31612345678"  # the demo's first on-call number
    twilio = app.fake_twilio
    assert twilio is not None
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{base}/login")
    await page.fill("#username", ADMIN)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")

    fault = {"service": "click2dial", "customer": "acme", "location": "acme-ams", "kind": "outage"}
    headers = await api_headers(app)
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{app.simulator_url}/admin/faults", json=fault) as response,
    ):
        assert response.status == 201, await response.text()

    async def delivered() -> bool:
        return any(m.to == oncall and m.status == "delivered" for m in twilio.messages)

    await until(delivered, "the on-call page delivered")
    await page.goto(f"{base}/fakes/phone")
    thread = page.locator(f"section.person[data-number='{oncall}']")
    page_sms = thread.locator("article.sms[data-direction='outbound-api']").first
    assert "Reply ACK 1" in await page_sms.inner_text()
    assert "delivered" in await page_sms.locator(".pill").inner_text()
    assert "queued" in await page_sms.locator(".trail").inner_text()

    assert await page.input_value("#from") == oncall
    await page.fill("#body", "ACK 1")
    await page.click(".reply-form button[type=submit]")
    await page.wait_for_url(lambda url: "/fakes/phone" in url and "result=" in url)
    reply = thread.locator("article.sms[data-direction='inbound']")
    assert "ACK 1" in await reply.inner_text()
    answer = thread.locator("article.sms[data-direction='outbound-reply']")
    assert "Incident 1 acknowledged. Thank you." in await answer.inner_text()
    # Newest first: our answer above the reply above the page it answers.
    boxes = [await box.bounding_box() for box in (answer, reply, page_sms)]
    assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)
    wide = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide, "the phone page scrolls sideways at 390 px"
    await shot(page, "12-phone-thread")
