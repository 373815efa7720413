"""SLA targets per priority (section 5 of the SLA) and the policy that holds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from sla.calendar import SupportCalendar
from sla.priority import Priority

SUPPORT_DAY = timedelta(hours=8, minutes=30)  # "1 working day" of response time


@dataclass(frozen=True, slots=True)
class Target:
    """Targets of one priority; ``None`` means not set (best effort / to be determined).

    ``response`` and ``update`` are support time; ``repair_working_days`` counts working days
    from the day after the report (the SLA's MTTR footnote).
    """

    response: timedelta | None
    update: timedelta | None
    repair_working_days: int | None


NO_TARGET = Target(response=None, update=None, repair_working_days=None)


@dataclass(frozen=True)
class SlaPolicy:
    """Everything the SLA engine needs: the calendar, targets and the KPI thresholds."""

    calendar: SupportCalendar
    targets: Mapping[Priority, Target]
    warning_at: float = 0.75
    performance_target: float = 0.90

    def __post_init__(self) -> None:
        if not 0 < self.warning_at < 1:
            raise ValueError("warning_at must be between 0 and 1")
        if not 0 < self.performance_target <= 1:
            raise ValueError("performance_target must be above 0 and at most 1")
        frozen = MappingProxyType({Priority(p): t for p, t in self.targets.items()})
        object.__setattr__(self, "targets", frozen)

    @classmethod
    def default(cls) -> SlaPolicy:
        """The defaults of ``sla.md``: NL calendar, 08:30-17:00 Europe/Amsterdam, section 5."""
        return cls(calendar=SupportCalendar(), targets=default_targets())

    def target(self, priority: Priority) -> Target:
        """The targets of ``priority``; a priority without targets has none set."""
        return self.targets.get(priority, NO_TARGET)


def default_targets() -> dict[Priority, Target]:
    return {
        Priority.CRITICAL: Target(
            response=timedelta(hours=4), update=timedelta(hours=4), repair_working_days=None
        ),
        Priority.HIGH: Target(
            response=timedelta(hours=8), update=timedelta(hours=8), repair_working_days=2
        ),
        Priority.NORMAL: Target(response=SUPPORT_DAY, update=None, repair_working_days=None),
        Priority.LOW: Target(response=SUPPORT_DAY, update=None, repair_working_days=None),
    }
