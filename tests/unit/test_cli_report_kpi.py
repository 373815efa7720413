"""``ctiwatch report kpi`` over incidents stored in a SQLite database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctiwatch.cli import main
from ctiwatch.kpi import kpi_incident, share_text
from ctiwatch.storage import IncidentRecord, Store
from sla.kpi import KpiIncident
from sla.priority import Priority
from sla.targets import SlaPolicy


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def record(number: int, priority: Priority, opened: str, **changes: object) -> IncidentRecord:
    base = IncidentRecord(
        number=number,
        customer="acme",
        automatic=True,
        priority=priority,
        status="open",
        title=f"incident {number}",
        opened_at=at(opened),
        updated_at=at(opened),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# Times are UTC; Amsterdam is UTC+1 in November and December.
INCIDENTS = [
    # P1 Tue 1 Dec 10:00-12:00 local: responded in time, 2 support hours to repair.
    record(
        1, Priority.CRITICAL, "2026-12-01T09:00",
        response_due=at("2026-12-01T13:00"), acknowledged_at=at("2026-12-01T09:30"),
        update_due=at("2026-12-01T13:30"), status="resolved", resolved_at=at("2026-12-01T11:00"),
    ),
    # P1 Wed 2 Dec 10:00-16:00 local: responded late, an update missed; 6 support hours.
    record(
        2, Priority.CRITICAL, "2026-12-02T09:00",
        response_due=at("2026-12-02T13:00"), acknowledged_at=at("2026-12-02T14:00"),
        update_due=at("2026-12-02T18:00"), breaches=("response", "update"),
        status="resolved", resolved_at=at("2026-12-02T15:00"),
    ),
    # P2 opened Tue 1 Dec 00:30 local (30 Nov in UTC): a December incident. Repaired in time,
    # 8.5 + 2.5 = 11 support hours.
    record(
        3, Priority.HIGH, "2026-11-30T23:30",
        response_due=at("2026-12-01T15:30"), acknowledged_at=at("2026-12-01T08:00"),
        update_due=at("2026-12-01T16:00"), repair_due=at("2026-12-03T16:00"),
        status="resolved", resolved_at=at("2026-12-02T10:00"),
    ),
    # P3 still open, responded in time; no update target, no repair yet.
    record(
        4, Priority.NORMAL, "2026-12-03T10:00",
        response_due=at("2026-12-04T10:00"), acknowledged_at=at("2026-12-03T10:30"),
    ),
    # P3 in November, responded late, repaired in 1 support hour.
    record(
        5, Priority.NORMAL, "2026-11-10T10:00",
        response_due=at("2026-11-11T10:00"), acknowledged_at=at("2026-11-11T12:00"),
        status="resolved", resolved_at=at("2026-11-10T11:00"),
    ),
]  # fmt: skip


async def save(url: str, records: list[IncidentRecord]) -> None:
    async with Store.open(url) as store, store.transaction() as tx:
        for item in records:
            await tx.incidents.save(item)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ctiwatch.db'}"
    asyncio.run(save(url, INCIDENTS))
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(f"storage:\n  url: {url}\n", encoding="utf-8")
    return path


def kpi(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["report", "kpi", "--config", str(config), *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_table_of_december_counts_the_incidents_opened_in_local_december(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = kpi(config, capsys, "--month", "2026-12")
    assert out.splitlines() == [
        "SLA KPIs 2026-12 (performance target 90%)",
        "month    priority     incidents  pending  response met  update met  SLA met  repair met  "
        "repair h mean  repair h max  target",
        "2026-12  P1 Critical          2        0         50.0%       50.0%    50.0%           -  "
        "         4.00          6.00  MISSED",
        "2026-12  P2 High              1        0        100.0%      100.0%   100.0%      100.0%  "
        "        11.00         11.00     met",
        "2026-12  P3 Normal            1        0        100.0%           -   100.0%           -  "
        "            -             -     met",
        "2026-12  P4 Low               0        0             -           -        -           -  "
        "            -             -     met",
        "pending: open incidents whose response or update is not due yet (not counted)",
        "repair hours are support hours from opening to resolution",
    ]


def test_json_of_all_months_has_november_and_december(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(kpi(config, capsys, "--format", "json"))
    assert document["month"] is None
    assert [
        (row["month"], row["priority"], row["incidents"], row["resolved"], row["met_share"])
        for row in document["rows"]
    ] == [
        ("2026-11", 3, 1, 1, 0.0),
        ("2026-12", 1, 2, 2, 0.5),
        ("2026-12", 2, 1, 1, 1.0),
        ("2026-12", 3, 1, 0, 1.0),
    ]
    assert document["rows"][0]["repair_hours"] == 1.0


def test_csv_of_december_has_one_line_per_priority(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(
        csv.DictReader(io.StringIO(kpi(config, capsys, "--month", "2026-12", "--format", "csv")))
    )
    assert [
        (r["priority"], r["incidents"], r["response_met_share"], r["meets_target"]) for r in rows
    ] == [
        ("1", "2", "0.5", "no"),
        ("2", "1", "1.0", "yes"),
        ("3", "1", "1.0", "yes"),
        ("4", "0", "", "yes"),
    ]


def test_html_of_november_has_one_chart(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = kpi(config, capsys, "--month", "2026-11", "--format", "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<h2>2026-11 P3 Normal</h2><p>1 incident, 1 resolved; misses the target; " in page
    counts = re.findall(r"<p>(\d+ incidents?), \d+ resolved;", page)
    assert sorted(counts) == ["0 incidents", "0 incidents", "0 incidents", "1 incident"]
    assert page.count("<svg ") == 4  # a row for every priority of the month
    assert "No incidents." not in page


def test_a_month_without_incidents_reports_empty_rows(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(kpi(config, capsys, "--month", "2027-01", "--format", "json"))
    assert [(row["priority"], row["incidents"]) for row in document["rows"]] == [
        (1, 0), (2, 0), (3, 0), (4, 0),
    ]  # fmt: skip


def test_missing_database_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ctiwatch.yaml"
    missing = tmp_path / "nothing.db"
    path.write_text(f"storage:\n  url: sqlite+aiosqlite:///{missing}\n", encoding="utf-8")
    assert main(["report", "kpi", "--config", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"error: storage.url: no database at {missing} (start `ctiwatch run` or run "
        "`ctiwatch db upgrade` first)\n"
    )
    assert not missing.exists()


# --- from a stored incident to its KPI record ------------------------------------------------

POLICY = SlaPolicy.default()


def test_kpi_record_responds_at_the_acknowledgement_and_met_the_update_without_a_breach() -> None:
    assert kpi_incident(INCIDENTS[0], POLICY) == KpiIncident(
        number=1,
        priority=Priority.CRITICAL,
        opened_at=at("2026-12-01T09:00"),
        response_due=at("2026-12-01T13:00"),
        responded_at=at("2026-12-01T09:30"),
        update_met=True,
        resolved_at=at("2026-12-01T11:00"),
        repair_due=None,
        update_due=at("2026-12-01T13:30"),
    )


def test_kpi_record_with_an_update_breach_missed_the_update() -> None:
    assert kpi_incident(INCIDENTS[1], POLICY).update_met is False


def test_kpi_record_of_a_priority_without_update_target_has_no_update_outcome() -> None:
    assert kpi_incident(INCIDENTS[3], POLICY).update_met is None


def test_kpi_record_of_a_p1_whose_update_due_was_cleared_still_has_an_update_target() -> None:
    assert kpi_incident(replace(INCIDENTS[0], update_due=None), POLICY).update_met is True


@pytest.mark.parametrize("month", ["0000-01", "2026-1", "٢٠٢٦-١٢", " 2026-12", "3000-01"])
def test_report_kpi_refuses_a_month_out_of_range_in_one_line_naming_the_option(
    month: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "kpi", "--month", month])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--month: not a month such as 2026-12 (YYYY-MM, 1970-01 to 2999-12)" in err


def test_a_share_just_below_the_target_never_shows_as_the_target() -> None:
    assert (share_text(0.8999), share_text(2 / 3), share_text(None)) == ("89.9%", "66.6%", "-")
