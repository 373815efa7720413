"""The values alerting works on: what happened (a trigger), to which incident, and the messages.

Pure data: frozen dataclasses, no I/O. The shell builds an :class:`IncidentView` from its own
incident record and a :class:`RoutingPolicy` from ``config.alerting``; nothing here imports the
shell, so the routing can be tested and simulated without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

Channel = Literal["email", "sms", "voice"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "voice")


class TriggerKind(StrEnum):
    """Why an alert goes out; the value is also the ``kind`` of the messages it causes."""

    OPENED = "opened"
    RAISED = "raised"
    ESCALATED = "escalated"
    RESPONSE_WARNING = "response_warning"
    RESPONSE_BREACH = "response_breach"
    UPDATE_WARNING = "update_warning"
    UPDATE_BREACH = "update_breach"
    REPAIR_WARNING = "repair_warning"
    REPAIR_BREACH = "repair_breach"
    CONTINGENCY = "contingency"
    RESOLVED = "resolved"

    @property
    def is_sla_timer(self) -> bool:
        return self.value.endswith(("_warning", "_breach"))

    @property
    def target(self) -> str | None:
        """``response`` / ``update`` / ``repair`` for an SLA timer event, else ``None``."""
        return self.value.split("_", 1)[0] if self.is_sla_timer else None


SLA_TIMER_KINDS: tuple[TriggerKind, ...] = tuple(k for k in TriggerKind if k.is_sla_timer)


@dataclass(frozen=True, slots=True)
class CustomerView:
    id: str
    name: str = ""
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class ScopeEntry:
    """One condition in an incident's scope; ``user`` is ``None`` for a whole location."""

    service: str
    location: str
    user: str | None
    priority: int
    condition: str = "down"  # how the text names it: "down", "degraded", "calls unrecognised"


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What alerting needs to know about an incident (a snapshot, never the live record)."""

    number: int
    customer: CustomerView
    priority: int
    automatic: bool
    opened_at: datetime
    title: str = ""
    description: str = ""
    priority_reason: str = ""
    scope: tuple[ScopeEntry, ...] = ()
    evidence: tuple[str, ...] = ()  # probe log lines of the failing checks
    response_due: datetime | None = None
    update_due: datetime | None = None
    repair_due: datetime | None = None
    resolved_by: str = ""  # "auto" or the person


@dataclass(frozen=True, slots=True)
class EscalationTarget:
    """The people an ``escalated`` trigger pages: one step of the escalation chain."""

    name: str  # "first line", "second line", "third line"
    numbers: tuple[str, ...] = ()  # mobiles: SMS, plus a call for P1
    landlines: tuple[str, ...] = ()  # called (never texted) for P1, inside support hours only
    email: str = ""  # the CloudCTI report address for the third line


@dataclass(frozen=True, slots=True)
class Trigger:
    """Something that calls for alerts.

    ``generation`` tells two triggers of the same kind for the same incident apart (the
    escalation generation, the count of raises, ...); with ``at`` it makes the idempotency key,
    so routing the same trigger twice gives the same keys and a resend is never a duplicate.
    """

    kind: TriggerKind
    at: datetime
    generation: int = 0
    due: datetime | None = None  # the deadline an SLA timer event is about
    escalation: EscalationTarget | None = None  # for ``escalated``
    reason: str = ""  # contingency: why the contingency line is called; free text otherwise
    previous_priority: int | None = None  # for ``raised``


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    support_email: str = "support@cloudcti.nl"
    support_line: str = "+31356990230"
    contingency_line: str = "+31356990244"
    contingency_min_p1_customers: int = 2
    oncall: tuple[str, ...] = ()
    timezone: str = "Europe/Amsterdam"  # times in texts are shown in this zone
    # The console's address as people reach it: e-mails link to ``{public_url}/incidents/N``
    # (None: e-mails carry no link).
    public_url: str | None = "http://127.0.0.1:8080"
    # Paging (``alerting.paging``): SMS about incidents of these priorities raised outside
    # support hours wait for the next opening; ctiwatch's own problems (no incident) too,
    # unless ``internal_any_hour``.
    held_priorities: frozenset[int] = frozenset({3, 4})
    internal_any_hour: bool = False


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """The facts of the moment routing depends on, computed by the shell."""

    in_support_hours: bool
    open_p1_customers: int = 0
    # Who is on call now (rotation and overrides applied); ``None``: the policy's list.
    oncall: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MessagePart:
    """One alert a (combined or held) message carries: about which incident, why, and when it
    was raised (a held part keeps the instant it was held from)."""

    incident: int | None
    kind: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    channel: Channel
    to: str
    kind: str
    subject: str
    text: str
    idempotency_key: str
    incident: int | None
    at: datetime
    # Channel extras: ``html`` for e-mail; ``sms`` (the short text, for a fallback) for voice.
    payload: Mapping[str, str] = field(default_factory=dict)
    # A combined message (``alerting.paging``): every alert it carries, the most urgent first
    # (``kind`` and ``incident`` are that one's). Empty for a message that carries one alert.
    parts: tuple[MessagePart, ...] = ()
    # A message held outside support hours and sent at the opening: when the oldest part was
    # held from. ``None`` for a message sent when it was raised.
    held_since: datetime | None = None

    @property
    def all_parts(self) -> tuple[MessagePart, ...]:
        """The alerts this message carries (itself when it is not a combined one)."""
        return self.parts or (MessagePart(self.incident, self.kind, self.at),)
