"""``ctiwatch report kpi`` as a process over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ctiwatch.storage import IncidentRecord, Store
from sla.priority import Priority

REPO = Path(__file__).resolve().parents[2]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


P2 = IncidentRecord(
    number=1,
    customer="acme",
    automatic=True,
    priority=Priority.HIGH,
    status="resolved",
    title="CRM recognition reduced",
    opened_at=at("2026-12-01T09:00"),  # Tue 10:00 in Amsterdam
    updated_at=at("2026-12-01T11:00"),
    acknowledged_at=at("2026-12-01T09:20"),
    resolved_at=at("2026-12-01T12:00"),  # 3 support hours later
    response_due=at("2026-12-01T17:00"),
    update_due=at("2026-12-01T17:20"),
    repair_due=at("2026-12-03T16:00"),
)


async def test_report_kpi_process_reads_the_stored_incidents(
    storage_url: str, tmp_path: Path
) -> None:
    late = replace(
        P2,
        number=2,
        opened_at=at("2026-12-02T09:00"),
        acknowledged_at=at("2026-12-02T18:00"),  # Wed: due 8 support hours later, 17:00 UTC
        response_due=at("2026-12-02T17:00"),
        breaches=("response",),
        resolved_at=None,
        status="open",
        repair_due=None,  # no outcome that depends on today's date
    )
    async with Store.open(storage_url) as store, store.transaction() as tx:
        await tx.incidents.save(P2)
        await tx.incidents.save(late)
    config = tmp_path / "ctiwatch.yaml"
    config.write_text(f"storage:\n  url: {storage_url}\n", encoding="utf-8")

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctiwatch", "report", "kpi", "--month", "2026-12",
        "--format", "csv", "--config", str(config),
        cwd=REPO, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert (process.returncode, err.decode()) == (0, "")
    assert out.decode().splitlines() == [
        "month,priority,incidents,resolved,pending,response_met_share,update_met_share,met_share,"
        "repair_met_share,repair_hours,repair_hours_max,meets_target",
        "2026-12,1,0,0,0,,,,,,,yes",
        # The open one's update was due Tue 17:20 UTC and never came: missed, not met.
        "2026-12,2,2,1,0,0.5,0.5,0.5,1.0,3.0,3.0,no",
        "2026-12,3,0,0,0,,,,,,,yes",
        "2026-12,4,0,0,0,,,,,,,yes",
    ]
