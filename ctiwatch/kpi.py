"""The SLA KPI report as every part of ctiwatch gives it: ``ctiwatch report kpi``, the console's
``/reports/kpi`` page and ``GET /api/v1/reports/kpi``.

One path from the stored incidents to the numbers: :func:`read_kpi_report` reads the incidents
opened in a local month (or every one), turns each into a :class:`~sla.kpi.KpiIncident`
(:func:`kpi_incident`) and hands them to :func:`sla.kpi.kpi_report`; :func:`kpi_csv` and
:func:`kpi_document` write the rows the one way the CLI, the page's CSV download and the API
answer them. A month is checked once too (:func:`sla.kpi.parse_month`), so a bad one is refused
in the same words everywhere.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any

from ctiwatch.storage import IncidentRecord, Store
from sla.kpi import KpiIncident, KpiReport, KpiRow, kpi_report, parse_month
from sla.targets import SlaPolicy
from sla.words import percent

_ALL_INCIDENTS = 2**31 - 1  # store.incidents.list has no "no limit"
REPAIR_HOURS_WORDS = "support hours from opening to resolution"


def current_month(policy: SlaPolicy, now: datetime) -> str:
    """The local month ``now`` is in (the SLA's months are local months)."""
    return policy.calendar.local(now).strftime("%Y-%m")


def kpi_incident(record: IncidentRecord, policy: SlaPolicy) -> KpiIncident:
    """What the KPI needs of a stored incident. The response counts from the acknowledgement;
    the update target was met unless a breach of it was recorded (``None``: no update target
    for the incident's priority); while the incident is open, :func:`sla.kpi.update_outcome`
    holds it pending until ``update_due`` passes."""
    if "update" in record.breaches:
        update_met: bool | None = False
    elif record.update_due is not None or policy.target(record.priority).update is not None:
        update_met = True
    else:
        update_met = None
    return KpiIncident(
        number=record.number,
        priority=record.priority,
        opened_at=record.opened_at,
        response_due=record.response_due,
        responded_at=record.acknowledged_at,
        update_met=update_met,
        resolved_at=record.resolved_at,
        repair_due=record.repair_due,
        update_due=record.update_due,
    )


async def read_kpi_incidents(
    store: Store, policy: SlaPolicy, month: str | None
) -> list[KpiIncident]:
    """The incidents opened in ``month`` (a local month; every one when None), oldest first."""
    if month is None:
        records = list(reversed(await store.incidents.list(limit=_ALL_INCIDENTS)))
    else:
        year, number = (int(part) for part in parse_month(month).split("-"))
        records = await store.incidents.in_month(date(year, number, 1), tz=policy.calendar.timezone)
    return [kpi_incident(record, policy) for record in records]


async def read_kpi_report(
    store: Store, policy: SlaPolicy, month: str | None, *, now: datetime
) -> KpiReport:
    """The KPI report of ``month`` from the incidents in ``store``, as of ``now`` (an open
    incident whose response or update is not due yet at ``now`` is pending, not missed)."""
    incidents = await read_kpi_incidents(store, policy, month)
    rows = kpi_report(incidents, policy, month, now=now)
    return KpiReport(month, policy.performance_target, tuple(rows), now)


# --- writing it -----------------------------------------------------------------------------


def share_text(share: float | None) -> str:
    """A share as the table and the page show it: ``66.6%`` (rounded down, so a share below
    the performance target never shows as the target), ``-`` where nothing counts."""
    return "-" if share is None else percent(share)


def kpi_target_text(target: float) -> str:
    """The performance target in words: ``90%``."""
    return f"{target * 100:.0f}%"


def hours_text(value: float | None) -> str:
    """Support hours with two decimals, ``-`` where nothing was resolved."""
    return "-" if value is None else f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class KpiFigures:
    """One row as the JSON report and the CSV carry it: shares 0..1, support hours, ``None``
    where nothing counts (no incident, no target, nothing resolved)."""

    month: str
    priority: int  # 1..4
    incidents: int  # opened in the month
    resolved: int
    pending: int  # open, and their response or update is not due yet: not counted
    response_met_share: float | None
    update_met_share: float | None
    met_share: float | None  # response and (where set) update met: what the target judges
    repair_met_share: float | None
    repair_hours: float | None  # mean support hours from opening to resolution
    repair_hours_max: float | None
    meets_target: bool  # met_share reaches the performance target (or nothing counted)


@dataclass(frozen=True, slots=True)
class KpiDocument:
    """The JSON report (``ctiwatch report kpi --format json``, ``GET /api/v1/reports/kpi``)."""

    month: str | None  # None: every month with incidents
    performance_target: float
    repair_hours: str  # what the repair hours count
    rows: tuple[KpiFigures, ...]


CSV_FIELDS = tuple(field.name for field in fields(KpiFigures))


def figures(row: KpiRow) -> KpiFigures:
    return KpiFigures(
        month=row.month,
        priority=int(row.priority),
        incidents=row.incidents,
        resolved=row.resolved,
        pending=row.pending,
        response_met_share=row.response_met_share,
        update_met_share=row.update_met_share,
        met_share=row.met_share,
        repair_met_share=row.repair_met_share,
        repair_hours=row.repair_hours,
        repair_hours_max=row.repair_hours_max,
        meets_target=row.meets_target,
    )


def kpi_csv(rows: Sequence[KpiRow]) -> str:
    """A header and one line per row; unknown values empty, ``meets_target`` yes or no."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = asdict(figures(row))
        values["meets_target"] = "yes" if row.meets_target else "no"
        writer.writerow({key: "" if value is None else value for key, value in values.items()})
    return out.getvalue()


def kpi_document(
    rows: Sequence[KpiRow], performance_target: float, month: str | None
) -> KpiDocument:
    return KpiDocument(
        month, performance_target, REPAIR_HOURS_WORDS, tuple(figures(row) for row in rows)
    )


def kpi_json(document: KpiDocument) -> dict[str, Any]:
    """``document`` as JSON values (rows as a list of objects)."""
    data = asdict(document)
    data["rows"] = list(data["rows"])
    return data
