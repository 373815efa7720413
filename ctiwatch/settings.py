"""Configuration → core values: the one shell module where ``ctiwatch.config`` meets the core.

The probes' targets and context, the SLA policy, the classifier's thresholds, routing, the
on-call rotation and the monitor's settings are all built here and nowhere else.

The core packages never import ``ctiwatch`` (the import-linter contracts in ``pyproject.toml``);
what they need of the configuration is built here, as their own plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alerting.model import CustomerView, RoutingPolicy
from alerting.rotation import Override, Rotation, parse_instant
from classifier.observation import CALL_SERVICES, CHECKS, Service, TargetKey
from classifier.thresholds import Thresholds
from ctiwatch.config import (
    AlertingConfig,
    CheckConfig,
    ClassificationConfig,
    Config,
    ConfigError,
    CustomerConfig,
    ProbesConfig,
    SlaConfig,
    TemplateConfig,
    default_template_config,
)
from pipeline.settings import CustomerTopology, EscalationStepSettings, MonitorSettings
from probes.base import ProbeContext, ProbeTarget, random_ids
from probes.http import check_template
from probes.template import DEFAULT_TEMPLATES, RequestTemplate
from sla.calendar import SupportCalendar
from sla.clock import Clock
from sla.priority import Priority
from sla.targets import SlaPolicy, Target


def template_from_config(cfg: TemplateConfig, kind: str | None = None) -> RequestTemplate:
    """A service's request template; its conditions were parsed when the file was loaded.

    A template that is exactly ``kind``'s default (left out, or written out unchanged) is the
    built-in one, judged by the service's own check with the evidence it always printed; a
    template that changes any part is judged by its conditions."""
    if kind is not None and kind in DEFAULT_TEMPLATES and cfg == default_template_config(kind):
        return DEFAULT_TEMPLATES[kind]
    return RequestTemplate(
        method=cfg.method,
        url=cfg.url,
        conditions=tuple(cfg.conditions),
        headers=dict(cfg.headers),
        body=cfg.body,
        recognised=cfg.recognised,
    )


def templates_from_config(probes: ProbesConfig) -> dict[Service, RequestTemplate]:
    """Each service's template (``probes.templates``)."""
    return {
        service: template_from_config(getattr(probes.templates, service.value), service.value)
        for service in CALL_SERVICES
    }


def targets_from_config(config: Config, *, checks: bool = True) -> list[ProbeTarget]:
    """Every customer x location x user x service, in configuration order, each with its
    service's template; then, with ``checks``, the customer's HTTP checks (``checks_of``).
    Agents and ``simulate`` leave the checks out: an agent probes its locations, and the
    simulator serves CloudCTI's call services only."""
    probes = config.probes
    templates = templates_from_config(probes)
    targets: list[ProbeTarget] = []
    for customer in config.topology.customers:
        for location in customer.locations:
            base_url = location.base_url or probes.base_url
            for user in location.users:
                for service in CALL_SERVICES:
                    targets.append(
                        ProbeTarget(
                            key=TargetKey(service, customer.id, location.id, user.id),
                            base_url=base_url,
                            api_token=probes.api_token,
                            caller_number=user.caller_number,
                            expected_contact=user.expected_contact,
                            extension=user.extension,
                            template=templates[service],
                        )
                    )
        for check in checks_of(config, customer) if checks else ():
            targets.append(check_target(probes, customer.id, check))
    return targets


def checks_of(config: Config, customer: CustomerConfig) -> list[CheckConfig]:
    """The customer's HTTP checks: every customer's (``probes.checks``), then its own."""
    return [*config.probes.checks, *customer.checks]


def check_target(probes: ProbesConfig, customer: str, check: CheckConfig) -> ProbeTarget:
    """One customer's run of a check: target ``(http, customer, checks, <check id>)``.

    No ``Authorization`` of ``probes.api_token``: a check may ask any host, so it sends only
    the headers it names (its own keys, from the environment)."""
    return ProbeTarget(
        key=TargetKey(Service.HTTP, customer, CHECKS, check.id),
        base_url=probes.base_url,
        api_token="",
        caller_number="",
        expected_contact="",
        template=check_template(
            method=check.method,
            url=check.url,
            conditions=check.conditions,
            headers=check.headers,
            body=check.body,
            certificate_warning_days=check.certificate_warning_days,
        ),
    )


def context_from_config(
    probes: ProbesConfig, clock: Clock, new_id: Callable[[], str] = random_ids
) -> ProbeContext:
    """The probes' context: the clock, and the timeout and retries of ``probes:``."""
    return ProbeContext(
        clock=clock,
        timeout=probes.timeout.total_seconds(),
        retries=probes.retries,
        retry_backoff=probes.retry_backoff.total_seconds(),
        new_id=new_id,
    )


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


def thresholds_from_config(cfg: ClassificationConfig) -> Thresholds:
    """The classifier's thresholds of ``classification:``."""
    return Thresholds(
        failed_rounds=cfg.failed_rounds,
        degraded_rate=cfg.degraded_rate,
        degraded_window=cfg.degraded_window,
        degraded_min_calls=cfg.degraded_min_calls,
        frequent_misses=cfg.frequent_misses,
        some_misses=cfg.some_misses,
        misses_window=cfg.misses_window,
        recovery_rounds=cfg.recovery_rounds,
        miss_quiet_period=cfg.miss_quiet_period,
    )


def routing_from_config(
    cfg: AlertingConfig, timezone: str, public_url: str | None = "http://127.0.0.1:8080"
) -> RoutingPolicy:
    """Whom routing reaches: the support address and lines, the on-call list, the P1 count
    that calls the contingency line."""
    return RoutingPolicy(
        support_email=cfg.support_email,
        support_line=cfg.support_line,
        contingency_line=cfg.contingency_line,
        contingency_min_p1_customers=cfg.contingency_min_p1_customers,
        oncall=tuple(cfg.oncall),
        timezone=timezone,
        public_url=public_url.rstrip("/") if public_url else None,
        held_priorities=frozenset(cfg.paging.held_priorities),
        internal_any_hour=cfg.paging.agent_alerts == "any_hour",
    )


def rotation_from_config(
    cfg: AlertingConfig, timezone: str, oncall: Sequence[str] | None = None
) -> Rotation:
    """Who is on call when: ``alerting.rotation`` (weeks and overrides) over the on-call list.

    ``oncall`` (a scenario's list) replaces both the list and the rotation. A bad override
    time is a :class:`ConfigError` naming the override.
    """
    if oncall is not None:
        return Rotation(fallback=tuple(oncall), timezone=timezone)
    fallback = tuple(cfg.oncall)
    if cfg.rotation is None:
        return Rotation(fallback=fallback, timezone=timezone)
    overrides: list[Override] = []
    errors: list[str] = []
    for index, item in enumerate(cfg.rotation.overrides):
        where = f"alerting.rotation.overrides[{index}]"
        try:
            start = parse_instant(item.start, timezone)
            end = parse_instant(item.end, timezone, end=True)
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        if end <= start:
            errors.append(f"{where}: end must be after start")
            continue
        overrides.append(Override(start, end, tuple(item.numbers)))
    if errors:
        raise ConfigError(errors)
    return Rotation(
        weeks=tuple(tuple(week) for week in cfg.rotation.weeks),
        overrides=tuple(overrides),
        fallback=fallback,
        timezone=timezone,
    )


def customer_topology(
    customer: CustomerConfig, common: Sequence[CheckConfig] = ()
) -> CustomerTopology:
    """What the monitor knows of a customer; ``common``: the checks of every customer."""
    contact = customer.contact
    return CustomerTopology(
        view=CustomerView(
            id=customer.id,
            name=customer.name,
            contact_name=contact.name,
            contact_email=contact.email,
            contact_phone=contact.phone,
        ),
        locations={loc.id: tuple(u.id for u in loc.users) for loc in customer.locations},
        checks={check.id: Priority(check.priority) for check in [*common, *customer.checks]},
    )


def monitor_settings(
    config: Config,
    customers: Sequence[CustomerConfig] | None = None,
    oncall: Sequence[str] | None = None,
) -> MonitorSettings:
    """Everything the monitor reads of the configuration; ``customers`` and ``oncall``
    (a scenario's) replace the topology and the on-call list."""
    alerting = config.alerting
    timezone = config.sla.timezone
    return MonitorSettings(
        customers=tuple(
            customer_topology(c, config.probes.checks)
            for c in (customers or config.topology.customers)
        ),
        thresholds=thresholds_from_config(config.classification),
        routing=routing_from_config(alerting, timezone, config.web.public_url),
        rotation=rotation_from_config(alerting, timezone, oncall),
        escalation=tuple(
            EscalationStepSettings(step.name, step.after, tuple(step.numbers))
            for step in alerting.escalation
        ),
    )
