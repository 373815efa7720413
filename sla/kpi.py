"""KPI report: per month and priority, how many incidents met their SLA targets.

The SLA's performance target (section 5): at least ``performance_target`` (90%) of the incidents
of a period meet their response target, and their update target where one is set. An incident
*meets the SLA* when both hold; ``meets_target`` compares the share of such incidents with the
performance target.

Outcomes per incident:
- response met: responded at or before ``response_due``; an incident resolved before anyone
  responded and before ``response_due`` met it too (resolving stops every clock). No response
  and no timely resolution is missed, unless ``now`` is given and ``response_due`` is still
  ahead (pending: left out of the share).
- update met: ``update_met`` as recorded (``False``: a breach of it was recorded, ``None``: no
  update target). An open incident whose ``update_due`` is still ahead of ``now`` has neither met
  nor missed it (pending: left out of the share); one whose ``update_due`` has passed missed it.
- Pending incidents (response or update outcome not known yet at ``now``) are counted apart
  (``pending``) and left out of the SLA-met share.
- repair met: resolved at or before ``repair_due`` (pending while open and due is ahead).

Repair time (``repair_hours``, ``repair_hours_max``) is **support time** from opening to
resolution, in hours, over the resolved incidents: the same clock the SLA's targets run on, so
a P2 opened on Friday evening and resolved on Monday at 10:00 took 1.5 hours, not 62.
Months are calendar months in the calendar's time zone, by the incident's ``opened_at``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sla.priority import Priority
from sla.targets import SlaPolicy

# ASCII digits only (``\d`` would take any script's digits), and years a database stores.
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})", re.ASCII)
FIRST_YEAR, LAST_YEAR = 1970, 2999
# The same rule as a JSON Schema pattern (the API's OpenAPI document).
MONTH_PATTERN = "^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"


class MonthError(ValueError):
    """A month that is not ``YYYY-MM``; the message says what was given (shortened)."""


def parse_month(text: str) -> str:
    """``text`` as a month ``YYYY-MM``, from 1970-01 to 2999-12, exactly (no blanks around).

    Raises :class:`MonthError` (its message without the field's name: the caller names it,
    ``--month`` or ``month``)."""
    value = text
    found = _MONTH.fullmatch(value)
    if (
        found is None
        or not FIRST_YEAR <= int(found.group(1)) <= LAST_YEAR
        or not 1 <= int(found.group(2)) <= 12
    ):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise MonthError(
            f"not a month such as 2026-12 (YYYY-MM, {FIRST_YEAR}-01 to {LAST_YEAR}-12): {shown!r}"
        )
    return value


@dataclass(frozen=True)
class KpiIncident:
    number: int
    priority: Priority
    opened_at: datetime
    response_due: datetime | None
    responded_at: datetime | None
    update_met: bool | None
    resolved_at: datetime | None
    repair_due: datetime | None
    update_due: datetime | None = None


@dataclass(frozen=True)
class KpiRow:
    month: str
    priority: Priority
    incidents: int
    response_met_share: float | None
    update_met_share: float | None
    repair_hours: float | None  # mean support hours from opening to resolution
    meets_target: bool
    met_share: float | None = None  # incidents meeting response and (where set) update
    repair_met_share: float | None = None
    repair_hours_max: float | None = None
    resolved: int = 0
    pending: int = 0  # incidents whose response or update is not due yet at ``now``


@dataclass(frozen=True)
class KpiReport:
    """The report of one month (``None``: every month with incidents), as of ``generated_at``."""

    month: str | None
    performance_target: float  # 0..1: the share of incidents that must meet the SLA
    rows: tuple[KpiRow, ...]
    generated_at: datetime


def _share(outcomes: list[bool]) -> float | None:
    return sum(outcomes) / len(outcomes) if outcomes else None


def response_outcome(incident: KpiIncident, now: datetime | None = None) -> bool | None:
    """True met, False missed, None no target or still pending at ``now``."""
    due = incident.response_due
    if due is None:
        return None
    if incident.responded_at is not None:
        return incident.responded_at <= due
    if incident.resolved_at is not None and incident.resolved_at <= due:
        return True
    if now is not None and now < due:
        return None
    return False


def update_outcome(incident: KpiIncident, now: datetime | None = None) -> bool | None:
    """True met, False missed, None no update target or still pending at ``now``."""
    recorded = incident.update_met
    if recorded is not True or incident.resolved_at is not None or now is None:
        return recorded
    due = incident.update_due
    if due is None:
        return recorded
    return None if now < due else False


def repair_outcome(incident: KpiIncident, now: datetime | None = None) -> bool | None:
    due = incident.repair_due
    if due is None:
        return None
    if incident.resolved_at is not None:
        return incident.resolved_at <= due
    if now is not None and now < due:
        return None
    return False


def month_of(policy: SlaPolicy, at: datetime) -> str:
    return policy.calendar.local(at).strftime("%Y-%m")


def kpi_report(
    incidents: Iterable[KpiIncident],
    policy: SlaPolicy,
    month: str | None = None,
    *,
    now: datetime | None = None,
) -> list[KpiRow]:
    """One row per (month, priority), ordered by month then priority.

    With ``month`` only that month is reported, with a row for every priority (an empty one has
    zero incidents, no shares and meets its target). Without it, every month that has incidents
    and only the priorities that occur.
    """
    groups: dict[tuple[str, Priority], list[KpiIncident]] = defaultdict(list)
    for incident in incidents:
        incident_month = month_of(policy, incident.opened_at)
        if month is None or incident_month == month:
            groups[(incident_month, Priority(incident.priority))].append(incident)
    if month is not None:
        for priority in Priority:
            groups.setdefault((month, priority), [])
    calendar = policy.calendar
    rows = []
    for (row_month, priority), members in sorted(groups.items()):
        responses = [response_outcome(i, now) for i in members]
        updates = [update_outcome(i, now) for i in members]
        repairs = [repair_outcome(i, now) for i in members]
        met: list[bool] = []
        pending = 0
        for incident, response, update in zip(members, responses, updates, strict=True):
            waiting = (incident.response_due is not None and response is None) or (
                incident.update_met is not None and update is None
            )
            pending += waiting
            if waiting or (response is None and update is None):
                continue
            met.append(response is not False and update is not False)
        hours = [
            calendar.support_between(i.opened_at, i.resolved_at).total_seconds() / 3600
            for i in members
            if i.resolved_at is not None
        ]
        met_share = _share(met)
        rows.append(
            KpiRow(
                month=row_month,
                priority=priority,
                incidents=len(members),
                response_met_share=_share([r for r in responses if r is not None]),
                update_met_share=_share([u for u in updates if u is not None]),
                repair_hours=sum(hours) / len(hours) if hours else None,
                meets_target=met_share is None or met_share >= policy.performance_target,
                met_share=met_share,
                repair_met_share=_share([r for r in repairs if r is not None]),
                repair_hours_max=max(hours) if hours else None,
                resolved=len(hours),
                pending=pending,
            )
        )
    return rows
