"""Build the pure SLA engine's :class:`SlaPolicy` from the ``sla`` config section.

Lives in ``ctiwatch`` because ``sla`` must not import the application shell.
"""

from __future__ import annotations

from ctiwatch.config import ConfigError, SlaConfig
from sla.calendar import SupportCalendar
from sla.priority import Priority
from sla.targets import SlaPolicy, Target

# Years whose holiday names a ``removed_holidays`` entry is checked against (some holidays,
# such as Liberation Day, exist only in some years).
_NAME_CHECK_YEARS = range(2024, 2032)


def policy_from_config(cfg: SlaConfig) -> SlaPolicy:
    """The policy ``cfg`` describes; a holiday name or country that does not exist is an error."""
    try:
        calendar = SupportCalendar(
            timezone=cfg.timezone,
            support_start=cfg.support_start,
            support_end=cfg.support_end,
            country=cfg.holidays_country,
            closed_days=cfg.closed_days,
            removed_holidays=cfg.removed_holidays,
        )
    except ValueError as exc:
        raise ConfigError([f"sla: {exc}"]) from exc
    if cfg.removed_holidays:
        known = {name.casefold() for name in calendar.holiday_names(_NAME_CHECK_YEARS)}
        unknown = [name for name in cfg.removed_holidays if name.strip().casefold() not in known]
        if unknown:
            raise ConfigError(
                [
                    f"sla.removed_holidays: {name!r} is not a holiday name in "
                    f'{cfg.holidays_country} (names such as "Good Friday" or "Goede vrijdag")'
                    for name in unknown
                ]
            )
    targets = {
        Priority(number): Target(
            response=target.response,
            update=target.update,
            repair_working_days=target.repair_working_days,
        )
        for number, target in cfg.targets.items()
    }
    return SlaPolicy(
        calendar=calendar,
        targets=targets,
        warning_at=cfg.warning_at,
        performance_target=cfg.performance_target,
    )
