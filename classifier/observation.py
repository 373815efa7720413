"""What is observed: facts, never judgement. Probes, agents and call events all produce these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Service(StrEnum):
    CLICK2DIAL = "click2dial"
    CRM = "crm"
    # A generic HTTP check of another endpoint of the platform (``probes.checks``): one per
    # customer and check, its ``user`` the check's name (see ``CHECKS``).
    HTTP = "http"


# The services the SLA's table is about: every test user of every location is probed for each.
CALL_SERVICES: tuple[Service, ...] = (Service.CLICK2DIAL, Service.CRM)
# The ``location`` of a check's target (checks belong to a customer, not to a location).
CHECKS = "checks"


class Source(StrEnum):
    """The kind of source; ``ProbeResult.source_id`` says which one."""

    PROBE = "probe"  # the central scheduler's own probe
    AGENT = "agent"  # a remote probe agent, over MQTT
    CALL = "call"  # a real call event published by the CTI platform


CENTRAL = "central"  # the source id of the central prober
CALLS = "calls"  # the source id of the platform's call events (calls, never rounds)


@dataclass(frozen=True, slots=True)
class TargetKey:
    """One probed thing: a service as one test user at one location of one customer."""

    service: Service
    customer: str
    location: str
    user: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One round for one target (or one real call).

    ``ok``: the endpoint was reachable and answered correctly within the timeout, after the
    round's own retries. ``recognised``: for a call that was answered, whether the caller was
    matched to a CRM contact (``None`` when no call was answered). A miss is ``ok`` and not
    ``recognised``; it never counts as a failure.

    ``source`` is the kind of source, ``source_id`` which one: ``central`` for the central
    prober, the agent's id for an agent, ``calls`` for call events. Consecutive-failure
    series are kept per (target, ``source_id``).
    """

    result_id: str
    target: TargetKey
    at: datetime
    ok: bool
    recognised: bool | None
    latency_ms: float
    status: int | None
    evidence: str
    source: Source = Source.PROBE
    attempts: int = 1
    source_id: str = CENTRAL

    @property
    def is_call(self) -> bool:
        return self.ok and self.recognised is not None

    @property
    def is_miss(self) -> bool:
        return self.ok and self.recognised is False
