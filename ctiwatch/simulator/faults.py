"""Fault injection, decided by a pure function: what should this request suffer, now?

A :class:`Fault` covers a service and optionally a customer, a location and some users, over an
optional window ``[start, end)``. Kinds:

* ``outage`` — the request fails: HTTP 503, or with ``refuse`` the connection is refused.
  ``rate`` (default 1) is the share of requests that fail.
* ``unrecognized`` — the service answers, but ``rate`` (default 1) of the calls are not
  matched to a CRM contact.
* ``slow`` — answers take ``latency`` seconds longer.

When several faults apply, an outage wins over the others, the largest ``slow`` latency
counts, and one draw against the largest ``unrecognized`` rate decides recognition. Draws come
from the caller's ``random.Random``, so a seeded run always picks the same calls.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from classifier.observation import Service
from ctiwatch.config import ConfigError, parse_duration
from ctiwatch.errors import describe_errors


class FaultKind(StrEnum):
    OUTAGE = "outage"
    UNRECOGNIZED = "unrecognized"
    SLOW = "slow"


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"  # answered with HTTP 503
    REFUSED = "refused"  # no answer: connection refused


@dataclass(frozen=True, slots=True)
class Fault:
    id: str
    service: Service
    kind: FaultKind
    customer: str | None = None
    location: str | None = None
    users: frozenset[str] | None = None
    rate: float = 1.0
    latency: float = 0.0  # seconds, for ``slow``
    start: datetime | None = None  # "from", inclusive
    end: datetime | None = None  # "to", exclusive
    refuse: bool = False  # ``outage`` refuses connections instead of answering 503
    sources: frozenset[str] | None = None  # who sees it (``central``, agent ids); None: all

    def applies(
        self,
        service: Service,
        customer: str,
        location: str,
        user: str,
        now: datetime,
        source: str = "central",
    ) -> bool:
        return (
            self.covers(service, customer, location, user)
            and (self.sources is None or source in self.sources)
            and (self.start is None or now >= self.start)
            and (self.end is None or now < self.end)
        )

    def covers(self, service: Service, customer: str, location: str, user: str) -> bool:
        """Whether the fault is about this user of this service, whenever it is in force."""
        return (
            self.service is service
            and (self.customer is None or self.customer == customer)
            and (self.location is None or self.location == location)
            and (self.users is None or user in self.users)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service.value,
            "kind": self.kind.value,
            "customer": self.customer,
            "location": self.location,
            "users": sorted(self.users) if self.users is not None else None,
            "rate": self.rate,
            "latency": self.latency,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "refuse": self.refuse,
            "sources": sorted(self.sources) if self.sources is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the simulator does with one request."""

    outcome: Outcome
    latency: float  # seconds before the answer
    recognised: bool


HEALTHY = Behaviour(Outcome.OK, 0.0, True)


def decide(
    faults: Iterable[Fault],
    service: Service,
    customer: str,
    location: str,
    user: str,
    now: datetime,
    rng: random.Random,
    source: str = "central",
) -> Behaviour:
    """The behaviour for one request of ``user`` to ``service`` at ``now``, asked by
    ``source`` (the central prober or an agent)."""
    outage: Fault | None = None
    latency = 0.0
    miss_rate = 0.0
    for fault in faults:
        if not fault.applies(service, customer, location, user, now, source):
            continue
        if fault.kind is FaultKind.OUTAGE:
            if outage is None or fault.rate > outage.rate:
                outage = fault
        elif fault.kind is FaultKind.SLOW:
            latency = max(latency, fault.latency)
        else:
            miss_rate = max(miss_rate, fault.rate)
    if outage is not None and (outage.rate >= 1.0 or rng.random() < outage.rate):
        if outage.refuse:
            return Behaviour(Outcome.REFUSED, 0.0, False)
        return Behaviour(Outcome.ERROR, latency, False)
    if miss_rate <= 0.0:
        return HEALTHY if latency == 0.0 else Behaviour(Outcome.OK, latency, True)
    recognised = not (miss_rate >= 1.0 or rng.random() < miss_rate)
    return Behaviour(Outcome.OK, latency, recognised)


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
_SPANS_LIMIT = 65_536
_User = tuple[Service, str, str, str]


class _Span(NamedTuple):
    """The faults in force for one user of one service from ``start`` until ``end``."""

    start: datetime
    end: datetime
    faults: tuple[Fault, ...]


class FaultPlan:
    """The faults in force, as the admin API and scenarios change them.

    Every request asks :meth:`decide`; a scenario may hold dozens of faults, most of them about
    other users or other days. So the plan keeps, per user of a service, the faults in force
    and the span of time over which that set holds, and looks again only outside it or after
    a change.
    """

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._faults: dict[str, Fault] = {}
        self._serial = 0
        self._spans: dict[_User, _Span] = {}
        for fault in faults:
            self._faults[fault.id] = fault

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults.values()))

    def __len__(self) -> int:
        return len(self._faults)

    def next_id(self) -> str:
        self._serial += 1
        while f"f{self._serial}" in self._faults:
            self._serial += 1
        return f"f{self._serial}"

    def add(self, fault: Fault) -> Fault:
        self._faults[fault.id] = fault
        self._spans.clear()
        return fault

    def add_from_data(
        self, data: Any, now: datetime, places: Iterable[tuple[str, str, str]] | None = None
    ) -> Fault:
        """Validate ``data`` (the admin API's JSON) and add it; :class:`ConfigError` if bad.

        ``places``: the simulator's (customer, location, user) triples (None: open mode)."""
        fault = parse_fault(data, now, "", places)
        return self.add(replace(fault, id=self.next_id()))

    def remove(self, fault_id: str) -> bool:
        self._spans.clear()
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        self._spans.clear()
        return count

    def decide(
        self,
        service: Service,
        customer: str,
        location: str,
        user: str,
        now: datetime,
        rng: random.Random,
        source: str = "central",
    ) -> Behaviour:
        if not self._faults:
            return HEALTHY
        key = (service, customer, location, user)
        span = self._spans.get(key)
        if span is None or not span.start <= now < span.end:
            span = self._span(key, now)
        if not span.faults:
            return HEALTHY
        return decide(span.faults, service, customer, location, user, now, rng, source)

    def _span(self, key: _User, now: datetime) -> _Span:
        start, end = _EARLIEST, _LATEST
        in_force: list[Fault] = []
        for fault in self._faults.values():  # in the plan's order, as ``decide`` reads them
            if not fault.covers(*key):
                continue
            if fault.start is not None and now < fault.start:
                end = min(end, fault.start)
            elif fault.end is not None and now >= fault.end:
                start = max(start, fault.end)
            else:
                in_force.append(fault)
                if fault.start is not None:
                    start = max(start, fault.start)
                if fault.end is not None:
                    end = min(end, fault.end)
        if len(self._spans) >= _SPANS_LIMIT:
            self._spans.clear()
        span = self._spans[key] = _Span(start, end, tuple(in_force))
        return span


# --- validation (admin API, ``simulator fault`` and scenarios) ------------------------------

MAX_LATENCY = timedelta(hours=1)  # a probe times out long before; more is a typo
MAX_DURATION = timedelta(days=366)
SCENARIO_CONTEXT = "scenario"  # validation context: a scenario's fault (window and rate required)


def _bounded(limit: timedelta, words: str) -> Any:
    def check(value: Any) -> timedelta:
        try:
            duration = parse_duration(value)
        except OverflowError:
            raise ValueError(f"must be at most {words}") from None
        if duration > limit:
            raise ValueError(f"must be at most {words}")
        return duration

    return BeforeValidator(check)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-12-01T09:00:00+01:00")
    return value


Latency = Annotated[timedelta, _bounded(MAX_LATENCY, "1h")]
FaultDuration = Annotated[timedelta, _bounded(MAX_DURATION, "366d")]
SourceId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]


class FaultSpec(BaseModel):
    """A fault as written in JSON (admin API, ``simulator fault``) or YAML (scenarios).

    ``from``/``to`` are ISO 8601 with an offset; ``for`` counts from ``from`` or else from now.
    ``sources``: who sees the fault, ``central`` and/or agent ids (default: every source).
    Validated with the context ``"scenario"``, a fault must also give ``from`` and ``to``
    and, when unrecognized, its ``rate``: a scenario's output is a contract, so nothing in it
    depends on when it runs or on a default rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    service: Service
    kind: FaultKind
    customer: str | None = None
    location: str | None = None
    users: list[str] | None = Field(default=None, min_length=1)
    rate: float | None = Field(default=None, gt=0, le=1)
    latency: Latency | None = None
    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")
    duration: FaultDuration | None = Field(default=None, alias="for")
    refuse: bool = False
    sources: list[SourceId] | None = Field(default=None, min_length=1)

    _aware = field_validator("start", "end")(_aware)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> FaultSpec:
        if info.context == SCENARIO_CONTEXT:
            if self.start is None:
                raise ValueError("from: is required in a scenario")
            if self.end is None:
                raise ValueError("to: is required in a scenario")
            if self.kind is FaultKind.UNRECOGNIZED and self.rate is None:
                raise ValueError("rate: is required for kind 'unrecognized'")
        if self.kind is FaultKind.SLOW and (self.latency is None or self.latency <= timedelta(0)):
            raise ValueError("latency: a slow fault needs a positive latency such as '20s'")
        if self.latency is not None and self.latency < timedelta(0):
            raise ValueError("latency: must not be negative")
        if self.kind is FaultKind.SLOW and self.rate is not None:
            raise ValueError("rate: only outage and unrecognized faults have a rate")
        if self.refuse and self.kind is not FaultKind.OUTAGE:
            raise ValueError("refuse: only an outage can refuse connections")
        if self.duration is not None and self.end is not None:
            raise ValueError("for: give either 'for' or 'to', not both")
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("for: must be a positive duration")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("to: must be after 'from'")
        return self

    def fault(self, now: datetime, fault_id: str) -> Fault:
        """The :class:`Fault` it describes; ``for`` counts from ``from`` or else ``now``."""
        start = self.start.astimezone(UTC) if self.start else None
        end = self.end.astimezone(UTC) if self.end else None
        if self.duration is not None:
            end = (start or now) + self.duration
        return Fault(
            id=fault_id,
            service=self.service,
            kind=self.kind,
            customer=self.customer,
            location=self.location,
            users=frozenset(self.users) if self.users is not None else None,
            rate=1.0 if self.rate is None else self.rate,
            latency=self.latency.total_seconds() if self.latency is not None else 0.0,
            start=start,
            end=end,
            refuse=self.refuse,
            sources=frozenset(self.sources) if self.sources is not None else None,
        )


def reference_errors(
    spec: FaultSpec,
    places: Iterable[tuple[str, str, str]],
    agents: Collection[str] | None = None,
) -> list[str]:
    """What ``spec`` names that the topology (customer, location, user triples) lacks.

    Each error names its field (``customer: unknown customer 'acmee'``). ``agents``: the agent
    ids a ``sources`` entry may name besides ``central`` (None: any id).
    """
    errors: list[str] = []
    known = list(places)
    customers = {c for c, _, _ in known}
    if spec.customer is not None and spec.customer not in customers:
        return [f"customer: unknown customer {spec.customer!r}"]
    chosen = [p for p in known if spec.customer is None or p[0] == spec.customer]
    if spec.location is not None:
        chosen = [p for p in chosen if p[1] == spec.location]
        if not chosen:
            owner = f"customer {spec.customer!r}" if spec.customer else "any customer"
            return [f"location: {spec.location!r} is not a location of {owner}"]
    users = {u for _, _, u in chosen}
    for user in spec.users or []:
        if user not in users:
            errors.append(f"users: unknown user {user!r} at the chosen location(s)")
    if agents is not None:
        allowed = {"central", *agents}
        for source in spec.sources or []:
            if source not in allowed:
                names = ", ".join(sorted(allowed))
                errors.append(f"sources: unknown source {source!r} (known: {names})")
    return errors


def fault_spec(data: Any) -> FaultSpec:
    """Validate a fault's JSON/YAML data; :class:`ConfigError` naming each bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError(["fault: must be an object with service and kind"])
    try:
        return FaultSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, dict(data))) from exc


def parse_fault(
    data: Any,
    now: datetime,
    fault_id: str,
    places: Iterable[tuple[str, str, str]] | None = None,
) -> Fault:
    """A :class:`Fault` from JSON/YAML data; ``for`` counts from ``from`` or else ``now``.

    ``places``: the topology's (customer, location, user) triples to check names against
    (None: open mode, any name). Raises :class:`ConfigError` naming the field.
    """
    spec = fault_spec(data)
    if places is not None:
        errors = reference_errors(spec, places)
        if errors:
            raise ConfigError(errors)
    return spec.fault(now, fault_id)
