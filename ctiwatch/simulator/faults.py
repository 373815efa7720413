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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from classifier.observation import Service
from ctiwatch.config import ConfigError, Duration
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

    def applies(
        self, service: Service, customer: str, location: str, user: str, now: datetime
    ) -> bool:
        return (
            self.covers(service, customer, location, user)
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
) -> Behaviour:
    """The behaviour for one request of ``user`` to ``service`` at ``now``."""
    outage: Fault | None = None
    latency = 0.0
    miss_rate = 0.0
    for fault in faults:
        if not fault.applies(service, customer, location, user, now):
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

    def add_from_data(self, data: Any, now: datetime) -> Fault:
        """Validate ``data`` (the admin API's JSON) and add it; :class:`ConfigError` if bad."""
        fault = parse_fault(data, now, "")
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
    ) -> Behaviour:
        if not self._faults:
            return HEALTHY
        key = (service, customer, location, user)
        span = self._spans.get(key)
        if span is None or not span.start <= now < span.end:
            span = self._span(key, now)
        if not span.faults:
            return HEALTHY
        return decide(span.faults, service, customer, location, user, now, rng)

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


# --- validation (admin API and scenarios) ---------------------------------------------------


class FaultSpec(BaseModel):
    """A fault as written in JSON or YAML; ``from``/``to`` are ISO 8601 with an offset."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    service: Service
    kind: FaultKind
    customer: str | None = None
    location: str | None = None
    users: list[str] | None = Field(default=None, min_length=1)
    rate: float | None = Field(default=None, ge=0, le=1)
    latency: Duration | None = None
    start: AwareDatetime | None = Field(default=None, alias="from")
    end: AwareDatetime | None = Field(default=None, alias="to")
    duration: Duration | None = Field(default=None, alias="for")
    refuse: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
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


def parse_fault(data: Any, now: datetime, fault_id: str) -> Fault:
    """A :class:`Fault` from JSON/YAML data; ``for`` counts from ``from`` or else ``now``."""
    if not isinstance(data, Mapping):
        raise ConfigError(["fault: must be an object with service and kind"])
    try:
        spec = FaultSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, dict(data))) from exc
    start = spec.start.astimezone(UTC) if spec.start else None
    end = spec.end.astimezone(UTC) if spec.end else None
    if spec.duration is not None:
        end = (start or now) + spec.duration
    return Fault(
        id=fault_id,
        service=spec.service,
        kind=spec.kind,
        customer=spec.customer,
        location=spec.location,
        users=frozenset(spec.users) if spec.users is not None else None,
        rate=1.0 if spec.rate is None else spec.rate,
        latency=spec.latency.total_seconds() if spec.latency is not None else 0.0,
        start=start,
        end=end,
        refuse=spec.refuse,
    )
