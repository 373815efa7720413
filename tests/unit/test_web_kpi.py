"""The SLA KPI report in the console (``/reports/kpi``, its CSV) and the API
(``GET /api/v1/reports/kpi``), over the real console service on SQLite and PostgreSQL, compared
with what ``ctiwatch report kpi`` prints as a process over the same database.

The scene is ``console_scene.kpi_scene``: incident 1 (Globex P2, opened Sun 29 Nov, resolved
automatically) is November's; in December ACME's P1 (incident 2, opened 09:30, response due
13:30) is acknowledged at 14:00, after its breach was recorded, and resolved by hand at 14:14;
Globex's bob fails three rounds from 14:00 (incident 3, P2), acknowledged at 14:02 and resolved
automatically when he answers again from 14:12. Every incident is
resolved, so no outcome depends on the day the test runs (the CLI reads the real clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from html import unescape
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import add_user, bearer, log_in, make_accounts, token_for
from console_scene import Scene, kpi_scene, real_console

from ctiwatch.web.app import build_web_app

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url) as playing:
        await kpi_scene(playing)
        yield playing


@pytest.fixture
async def viewer(aiohttp_client: ClientFactory, scene: Scene) -> Client:
    """A person with the lowest role, logged in through the form (pages and API alike)."""
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=None)
    client = await aiohttp_client(app)
    await add_user(accounts, "vera", "viewer")
    await log_in(client, "vera")
    return client


@pytest.fixture
async def api(aiohttp_client: ClientFactory, scene: Scene) -> Client:
    accounts = make_accounts(scene.store, scene.clock)
    app = build_web_app(scene.console, accounts=accounts, metrics_registry=None)
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, "bi", "viewer")))


async def cli(scene: Scene, tmp_path: Path, *args: str) -> str:
    """``ctiwatch report kpi ARGS`` as a process over the scene's database."""
    config = tmp_path / "report.yaml"
    config.write_text(f"storage:\n  url: {scene.config.storage.url}\n", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctiwatch", "report", "kpi", *args, "--config", str(config),
        cwd=REPO, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert (process.returncode, err.decode()) == (0, "")
    return out.decode()


def page_rows(html: str) -> list[list[str]]:
    """The report table's rows as the cells' text, like the CLI table's columns."""
    body = html.split('<table class="kpi">', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr class=\"(?:met|missed)\".*?</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        rows.append([" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows


def table_rows(text: str) -> list[list[str]]:
    """The CLI table's rows (after the title and the header), split into its columns."""
    lines = [line for line in text.splitlines()[2:] if re.match(r"\d{4}-\d{2} ", line)]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


@pytest.mark.parametrize("month", ["2026-11", "2026-12"])
async def test_the_cli_the_page_and_the_api_give_the_same_kpi_numbers(
    scene: Scene, viewer: Client, api: Client, tmp_path: Path, month: str
) -> None:
    answer = await api.get(f"/api/v1/reports/kpi?month={month}")
    assert answer.status == 200
    assert await answer.json() == json.loads(await cli(scene, tmp_path, "--month", month,
                                                         "--format", "json"))  # fmt: skip

    download = await viewer.get(f"/reports/kpi.csv?month={month}")
    assert download.status == 200
    assert download.content_type == "text/csv"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="ctiwatch-kpi-{month}.csv"'
    )
    assert await download.text() == await cli(scene, tmp_path, "--month", month, "--format", "csv")

    page = await viewer.get(f"/reports/kpi?month={month}")
    assert page.status == 200
    shown = page_rows(await page.text())
    table = table_rows(await cli(scene, tmp_path, "--month", month))
    # The CLI's columns: month, priority, then the figures and the verdict, as the page shows
    # them (the page adds how many were resolved).
    assert [[cells[0], cells[1], *cells[3:]] for cells in shown] == [
        [f"P{row[1][1]} {row[1][3:]}", *row[2:10], "✓ met" if row[10] == "met" else "✗ MISSED"]
        for row in table
    ]


async def test_december_shows_the_late_p1_missed_and_the_p2_met(viewer: Client) -> None:
    # P1: acknowledged at 14:00, due 13:30 (response and update missed), resolved at 14:14:
    # 4 h 44 m of support time. P2: opened 14:02 (third failed round), acknowledged then,
    # resolved 14:14 (third good round): 12 minutes, 0.20 h.
    page = await viewer.get("/reports/kpi?month=2026-12")
    html = await page.text()
    assert page_rows(html) == [
        ["P1 Critical", "1", "1", "0", "0.0%", "0.0%", "0.0%", "-", "4.73", "4.73", "✗ MISSED"],
        ["P2 High", "1", "1", "0", "100.0%", "100.0%", "100.0%", "100.0%", "0.20", "0.20",
         "✓ met"],
        ["P3 Normal", "0", "0", "0", "-", "-", "-", "-", "-", "-", "✓ met"],
        ["P4 Low", "0", "0", "0", "-", "-", "-", "-", "-", "-", "✓ met"],
    ]  # fmt: skip
    assert 'data-priority="1" data-meets-target="no"' in html
    assert 'href="/reports/kpi.csv?month=2026-12"' in html
    assert 'href="/reports/kpi?month=2026-11" rel="prev"' in html
    assert 'href="/reports/kpi?month=2027-01" rel="next"' in html


async def test_without_a_month_the_page_and_the_api_report_the_current_month(
    viewer: Client, api: Client
) -> None:
    page = await viewer.get("/reports/kpi")
    html = await page.text()
    assert "<h1>SLA KPIs 2026-12</h1>" in html
    assert 'name="month" value="2026-12"' in html
    assert '<a href="/reports/kpi" class="active">KPIs</a>' in html  # in the navigation
    document = await (await api.get("/api/v1/reports/kpi")).json()
    assert document["month"] == "2026-12"
    assert [row["incidents"] for row in document["rows"]] == [1, 1, 0, 0]


HOSTILE_MONTHS = [
    "2026-13", "2026-00", "2026-1", "0000-01", "1969-12", "3000-01", "26-12", "2026/12",
    " 2026-12", "2026-12\n", "٢٠٢٦-١٢", "2026-12'--", "x" * 4_000,
]  # fmt: skip


async def test_a_bad_month_is_refused_with_400_naming_month_everywhere(
    viewer: Client, api: Client
) -> None:
    for month in HOSTILE_MONTHS:
        answer = await api.get("/api/v1/reports/kpi", params={"month": month})
        assert answer.status == 400, month
        body = await answer.json()
        assert body["field"] == "month"
        assert body["error"].startswith("month: not a month such as 2026-12 (YYYY-MM, 1970-01")
        assert len(body["error"]) < 200

        page = await viewer.get("/reports/kpi", params={"month": month})
        assert page.status == 400, month
        html = await page.text()
        assert 'role="alert" data-field="month">month: not a month such as 2026-12' in html
        assert 'class="invalid" required' in html
        assert "<table" not in html

        download = await viewer.get("/reports/kpi.csv", params={"month": month})
        assert download.status == 400, month
        assert download.content_type == "text/html"


async def test_an_unknown_query_parameter_is_refused_naming_it(api: Client) -> None:
    answer = await api.get("/api/v1/reports/kpi?monht=2026-12")
    assert answer.status == 400
    assert (await answer.json())["field"] == "monht"


async def test_the_openapi_document_describes_the_kpi_report(api: Client) -> None:
    document = await (await api.get("/api/v1/openapi.json")).json()
    operation = document["paths"]["/api/v1/reports/kpi"]["get"]
    assert operation["x-required-role"] == "viewer"
    [month] = operation["parameters"]
    assert (month["name"], month["in"], month["required"]) == ("month", "query", False)
    assert set(operation["responses"]) == {"200", "400", "401", "403", "503"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/KpiDocument"}
    figures = document["components"]["schemas"]["KpiFigures"]
    assert list(figures["properties"]) == [
        "month", "priority", "incidents", "resolved", "pending", "response_met_share",
        "update_met_share", "met_share", "repair_met_share", "repair_hours", "repair_hours_max",
        "meets_target",
    ]  # fmt: skip


async def test_the_kpi_report_is_refused_anonymously(
    aiohttp_client: ClientFactory, scene: Scene
) -> None:
    accounts = make_accounts(scene.store, scene.clock)
    client = await aiohttp_client(build_web_app(scene.console, accounts=accounts,
                                                metrics_registry=None))  # fmt: skip
    assert (await client.get("/api/v1/reports/kpi")).status == 401
    for path in ("/reports/kpi", "/reports/kpi.csv"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"].startswith("/login?next=")
