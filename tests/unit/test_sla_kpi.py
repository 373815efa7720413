"""KPI report on constructed incidents, and every format of ``report kpi``."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ctiwatch.cli import main
from ctiwatch.commands.report import render_csv, render_html, render_json, render_table
from sla.kpi import KpiIncident, KpiRow, kpi_report
from sla.priority import Priority
from sla.targets import SlaPolicy

AMS = ZoneInfo("Europe/Amsterdam")
POLICY = SlaPolicy.default()


def ams(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def incident(
    number: int,
    priority: Priority = Priority.CRITICAL,
    opened: str = "2026-12-01T09:00",
    responded_after: timedelta | None = timedelta(hours=1),
    update_met: bool | None = True,
    resolved: str | None = None,
    repair_due: str | None = None,
) -> KpiIncident:
    opened_at = ams(opened)
    return KpiIncident(
        number=number,
        priority=priority,
        opened_at=opened_at,
        response_due=opened_at + timedelta(hours=4),
        responded_at=None if responded_after is None else opened_at + responded_after,
        update_met=update_met,
        resolved_at=None if resolved is None else ams(resolved),
        repair_due=None if repair_due is None else ams(repair_due),
    )


def test_p1_month_with_nine_of_ten_responses_in_time_meets_the_90_percent_target() -> None:
    incidents = [incident(n) for n in range(1, 10)]
    incidents.append(incident(10, responded_after=timedelta(hours=5)))
    [row] = kpi_report(incidents, POLICY)
    assert (row.month, row.priority, row.incidents) == ("2026-12", Priority.CRITICAL, 10)
    assert row.response_met_share == pytest.approx(0.9)
    assert row.update_met_share == 1.0
    assert row.met_share == pytest.approx(0.9)
    assert row.meets_target is True


def test_two_missed_updates_in_ten_miss_the_target() -> None:
    incidents = [incident(n, update_met=n > 2) for n in range(1, 11)]
    [row] = kpi_report(incidents, POLICY)
    assert row.response_met_share == 1.0
    assert row.update_met_share == pytest.approx(0.8)
    assert row.met_share == pytest.approx(0.8)
    assert row.meets_target is False


def test_incident_resolved_before_response_due_without_response_met_it() -> None:
    auto = incident(1, responded_after=None, resolved="2026-12-01T10:00")
    [row] = kpi_report([auto], POLICY)
    assert row.response_met_share == 1.0


def test_unanswered_incident_misses_response_unless_still_pending_at_now() -> None:
    silent = incident(1, responded_after=None, update_met=None)
    [missed] = kpi_report([silent], POLICY)
    assert missed.response_met_share == 0.0
    assert missed.meets_target is False
    [pending] = kpi_report([silent], POLICY, now=ams("2026-12-01T10:00"))
    assert pending.response_met_share is None
    assert pending.met_share is None
    assert pending.meets_target is True


def test_open_incident_whose_update_is_not_due_yet_is_pending_not_met() -> None:
    # P1 opened Tue 09:00, acknowledged at 10:00; the next update is due at 13:00.
    waiting = replace(incident(1, update_met=True), update_due=ams("2026-12-01T13:00"))
    [row] = kpi_report([waiting], POLICY, now=ams("2026-12-01T11:00"))
    assert row.response_met_share == 1.0
    assert row.update_met_share is None
    assert row.met_share is None
    assert row.pending == 1
    assert row.meets_target is True


def test_open_incident_whose_update_due_passed_without_update_missed_it() -> None:
    late = replace(incident(1, update_met=True), update_due=ams("2026-12-01T13:00"))
    [row] = kpi_report([late], POLICY, now=ams("2026-12-01T13:00"))
    assert row.update_met_share == 0.0
    assert row.met_share == 0.0
    assert row.pending == 0
    assert row.meets_target is False


def test_resolved_incident_without_update_breach_met_the_update() -> None:
    done = incident(1, update_met=True, resolved="2026-12-01T11:00")
    resolved = replace(done, update_due=ams("2026-12-01T13:00"))
    [row] = kpi_report([resolved], POLICY, now=ams("2026-12-01T11:30"))
    assert row.update_met_share == 1.0
    assert row.pending == 0


def test_repair_hours_are_support_hours_from_opening_to_resolution() -> None:
    weekend = incident(
        1, Priority.HIGH, opened="2026-12-04T16:00", resolved="2026-12-07T10:00",
        repair_due="2026-12-08T17:00",
    )  # fmt: skip
    late = incident(
        2, Priority.HIGH, opened="2026-12-01T09:00", resolved="2026-12-03T13:00",
        repair_due="2026-12-02T17:00",
    )  # fmt: skip
    open_one = incident(3, Priority.HIGH, opened="2026-12-10T09:00")
    [row] = kpi_report([weekend, late, open_one], POLICY)
    # Fri 16:00-17:00 + Mon 08:30-10:00 = 2.5 h; Tue 09:00 -> Thu 13:00 = 8 + 8.5 + 4.5 = 21 h.
    assert row.repair_hours == pytest.approx((2.5 + 21) / 2)
    assert row.repair_hours_max == pytest.approx(21)
    assert row.resolved == 2
    assert row.repair_met_share == 0.5


def test_incidents_group_by_local_month_and_priority() -> None:
    late_november_utc = KpiIncident(
        number=1,
        priority=Priority.LOW,
        opened_at=datetime.fromisoformat("2026-11-30T23:30:00+00:00"),  # 00:30 on 1 Dec local
        response_due=None,
        responded_at=None,
        update_met=None,
        resolved_at=None,
        repair_due=None,
    )
    rows = kpi_report(
        [late_november_utc, incident(2, opened="2026-11-20T10:00"), incident(3)], POLICY
    )
    assert [(r.month, r.priority, r.incidents) for r in rows] == [
        ("2026-11", Priority.CRITICAL, 1),
        ("2026-12", Priority.CRITICAL, 1),
        ("2026-12", Priority.LOW, 1),
    ]


def test_a_month_report_has_a_row_for_every_priority() -> None:
    rows = kpi_report([incident(1), incident(2, opened="2026-11-20T10:00")], POLICY, "2026-12")
    assert [(r.priority, r.incidents, r.meets_target) for r in rows] == [
        (Priority.CRITICAL, 1, True),
        (Priority.HIGH, 0, True),
        (Priority.NORMAL, 0, True),
        (Priority.LOW, 0, True),
    ]


# --- rendering ----------------------------------------------------------------------------


def sample_rows() -> list[KpiRow]:
    incidents = [incident(n, update_met=n != 1) for n in range(1, 5)]
    return kpi_report(incidents, POLICY, "2026-12")


def test_table_shows_shares_and_verdict() -> None:
    text = render_table(sample_rows(), POLICY, "2026-12")
    lines = text.splitlines()
    assert lines[0] == "SLA KPIs 2026-12 (performance target 90%)"
    assert lines[2].split() == [
        "2026-12", "P1", "Critical", "4", "0", "100.0%", "75.0%", "75.0%", "-", "-", "-", "MISSED",
    ]  # fmt: skip


def test_csv_has_a_header_and_one_line_per_row() -> None:
    records = list(csv.DictReader(io.StringIO(render_csv(sample_rows(), POLICY, "2026-12"))))
    assert len(records) == 4
    assert records[0] == {
        "month": "2026-12",
        "priority": "1",
        "incidents": "4",
        "resolved": "0",
        "pending": "0",
        "response_met_share": "1.0",
        "update_met_share": "0.75",
        "met_share": "0.75",
        "repair_met_share": "",
        "repair_hours": "",
        "repair_hours_max": "",
        "meets_target": "no",
    }


def test_json_lists_rows_with_the_performance_target() -> None:
    document = json.loads(render_json(sample_rows(), POLICY, "2026-12"))
    assert document["performance_target"] == 0.9
    assert document["rows"][0]["met_share"] == 0.75
    assert [r["priority"] for r in document["rows"]] == [1, 2, 3, 4]


def test_html_draws_one_inline_svg_chart_per_priority_without_external_assets() -> None:
    page = render_html(sample_rows(), POLICY, "2026-12")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg ") == 4
    assert 'width="225.0" height="18" fill="#c62828"' in page  # update met 75% < 90%: red
    assert 'width="300.0" height="18" fill="#2e7d32"' in page  # response met 100%: green
    for external in ("<script", "<link", "src=", "href=", "@import"):
        assert external not in page


def test_html_escapes_text() -> None:
    page = render_html([], POLICY, "<b>&")
    assert "&lt;b&gt;&amp;" in page
    assert "<b>&" not in page


def test_report_kpi_refuses_a_bad_month(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "kpi", "--month", "2026-13"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--month" in err
