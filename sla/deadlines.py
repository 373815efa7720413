"""Deadlines of one incident from its priority and report time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sla.priority import Priority
from sla.targets import SlaPolicy


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When response, the next update and repair are due (UTC); ``None`` where not set."""

    response_due: datetime | None
    update_due: datetime | None
    repair_due: datetime | None


def compute_deadlines(policy: SlaPolicy, priority: Priority, reported_at: datetime) -> Deadlines:
    """Deadlines counted from ``reported_at`` (or from a priority change / reopening)."""
    target = policy.target(priority)
    calendar = policy.calendar
    response_due = (
        None if target.response is None else calendar.add_support(reported_at, target.response)
    )
    if target.update is None:
        update_due = None
    elif target.update == target.response:
        update_due = response_due
    else:
        update_due = calendar.add_support(reported_at, target.update)
    repair_due = (
        None
        if target.repair_working_days is None
        else calendar.working_days_deadline(reported_at, target.repair_working_days)
    )
    return Deadlines(response_due=response_due, update_due=update_due, repair_due=repair_due)


def next_update_due(
    policy: SlaPolicy, priority: Priority, last_update_at: datetime
) -> datetime | None:
    """TTTU restarts after every update or response: the next update is due TTTU later."""
    update = policy.target(priority).update
    return None if update is None else policy.calendar.add_support(last_update_at, update)
