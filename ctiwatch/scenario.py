"""Scenario files for ``ctiwatch simulate`` (the contract in ``shared/spec/simulate.md``).

Strict like the configuration: unknown keys are errors and every error names the field, e.g.
``faults[2].location: 'acme-rtm' is not a location of customer 'acme'``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from classifier.observation import Service
from ctiwatch.config import (
    ConfigError,
    CustomerConfig,
    Duration,
    Identifier,
    PhoneNumber,
    Strict,
    load_yaml,
)
from ctiwatch.errors import describe_errors
from ctiwatch.simulator.faults import SCENARIO_CONTEXT, FaultSpec, reference_errors


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-12-01T09:00:00+01:00")
    return value


class AgentSpec(Strict):
    """A remote probe agent in a scenario: it probes every user of its locations."""

    id: Identifier
    locations: list[str] = Field(min_length=1)


class MaintenanceSpec(Strict):
    from_: datetime = Field(alias="from")
    to: datetime
    services: list[Service] | None = None
    customers: list[str] | None = None
    locations: list[str] | None = None
    reason: str = "announced maintenance"
    # An announced window lies outside support hours (sla.md) unless it is an emergency,
    # which needs its justification.
    emergency: bool = False
    justification: str = ""

    _aware = field_validator("from_", "to")(_aware)

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceSpec:
        if self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        if self.emergency and not self.justification.strip():
            raise ValueError("an emergency window needs a justification")
        return self


ActionKind = Literal["acknowledge", "update", "resolve", "reopen"]


class ActionSpec(Strict):
    at: datetime
    acknowledge: int | None = Field(default=None, ge=1)
    update: int | None = Field(default=None, ge=1)
    resolve: int | None = Field(default=None, ge=1)
    reopen: int | None = Field(default=None, ge=1)
    text: str | None = None
    by: str = "scenario"

    _aware = field_validator("at")(_aware)

    @model_validator(mode="after")
    def _one_action(self) -> ActionSpec:
        names = ("acknowledge", "update", "resolve", "reopen")
        chosen = [name for name in names if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError("give exactly one of acknowledge, update, resolve, reopen")
        return self

    @property
    def kind(self) -> ActionKind:
        for name in ("acknowledge", "update", "resolve", "reopen"):
            if getattr(self, name):
                return name
        raise AssertionError("validated to have one action")

    @property
    def incident(self) -> int:
        number = getattr(self, self.kind)
        assert isinstance(number, int)
        return number


class Scenario(Strict):
    start: datetime
    duration: Duration
    probe_interval: Duration | None = None
    customers: list[CustomerConfig] | None = None
    faults: list[FaultSpec] = Field(default_factory=list)
    agents: list[AgentSpec] = Field(default_factory=list)
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    oncall: list[PhoneNumber] | None = None
    seed: int = 0

    _aware = field_validator("start")(_aware)

    @field_validator("duration", "probe_interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @property
    def end(self) -> datetime:
        return self.start + self.duration


def check_references(scenario: Scenario, customers: list[CustomerConfig]) -> list[str]:
    """Faults, agents and maintenance must name customers, locations, users and agents that
    exist; agent ids must be unique."""
    errors: list[str] = []
    by_id = {c.id: c for c in customers}
    places = [(c.id, loc.id, u.id) for c in customers for loc in c.locations for u in loc.users]
    all_locations = {loc.id for c in customers for loc in c.locations}
    seen: set[str] = set()
    for index, agent in enumerate(scenario.agents):
        if agent.id in seen:
            errors.append(f"agents[{index}].id: duplicate agent id {agent.id!r}")
        seen.add(agent.id)
        for location in agent.locations:
            if location not in all_locations:
                errors.append(f"agents[{index}].locations: unknown location {location!r}")
    for index, fault in enumerate(scenario.faults):
        errors += [f"faults[{index}].{e}" for e in reference_errors(fault, places, seen)]
    for index, window in enumerate(scenario.maintenance):
        for customer in window.customers or []:
            if customer not in by_id:
                errors.append(f"maintenance[{index}].customers: unknown customer {customer!r}")
        for location in window.locations or []:
            if location not in all_locations:
                errors.append(f"maintenance[{index}].locations: unknown location {location!r}")
    for index, action in enumerate(scenario.actions):
        if not scenario.start <= action.at <= scenario.end:
            errors.append(f"actions[{index}].at: outside the simulated period")
    return errors


def scenario_from_data(data: Any) -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError(["the scenario must be a mapping (start, duration, faults, ...)"])
    try:
        return Scenario.model_validate(data, context=SCENARIO_CONTEXT)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, data)) from exc


def load_scenario(path: str | Path) -> Scenario:
    return scenario_from_data(load_yaml(Path(path)))
