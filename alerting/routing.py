"""Who is told what, over which channel (section 4 of the SLA, ``docs/spec/sla.md``).

Pure: a trigger, a snapshot of the incident, the policy from config and the facts of the moment
go in; the messages to send come out. No I/O, no clock (``trigger.at`` is the instant).

The rules, per trigger kind ("on-call" is ``context.oncall`` when the shell set it from the
rotation, else ``policy.oncall``; "P1" is the incident's priority after the trigger):

* ``opened``
  - automatic incident: e-mail kind ``report`` to the support address with everything a
    complete report holds (customer details, description, priority and its reason, affected
    locations and users, probe evidence as log lines);
  - SMS kind ``opened`` to every on-call number;
  - P1: voice kind ``opened`` to every on-call number and, inside support hours, voice to the
    support line.
  An incident opened by a person gets no e-mail report (the person is the report), except a
  question (P4 opened by a person): the SLA's clocks run only once CloudCTI has the report, so
  it is e-mailed to the support address too, kind ``report``. The rest is the same.
* ``raised``: SMS ``raised`` to on-call; if the new priority is P1, voice ``raised`` to on-call
  and, inside support hours, to the support line.
* every SLA timer event (``response_warning``, ``response_breach``, ``update_warning``,
  ``update_breach``, ``repair_warning``, ``repair_breach``): SMS to on-call; P1: voice to
  on-call as well.
* ``contingency`` (when it is raised: :func:`alerting.contingency.contingency_triggers`):
  voice ``contingency`` to the line of :func:`alerting.contingency.contingency_call` (the
  contingency line outside support hours, the normal support line inside); SMS
  ``contingency`` to on-call; P1: voice ``contingency`` to on-call as well (after the line).
* ``escalated``: to the escalation step in ``trigger.escalation``: SMS to its numbers, P1: voice
  to its numbers, and inside support hours to its landlines; its ``email`` (the third line, the
  CloudCTI report) gets the report again, kind ``escalated``. On-call is told too: SMS
  ``escalated`` ("escalated to <step>") to every on-call number and, P1, voice ``escalated``
  to them, after the step's recipients (an on-call number that is also one of the step's
  numbers gets each channel once).
* ``resolved``: SMS ``resolved`` to on-call, never a voice call, not even for P1 (a recovery
  has nothing to acknowledge: a deliberate reading of "voice calls for P1"); automatic
  incidents: e-mail ``resolved`` to the support address.

Messages come out in a fixed order (e-mail, SMS, voice; recipients in list order), and one
recipient never gets the same channel twice for one trigger. The idempotency key is
``<incident>:<kind>:<trigger instant, UTC>:<generation>:<channel>:<recipient>``: routing the
same trigger again gives the same keys, so a resend is never a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

from alerting.contingency import contingency_call
from alerting.messages import email_report, email_resolved, sms_text, voice_text
from alerting.model import (
    Channel,
    IncidentView,
    OutgoingMessage,
    RoutingContext,
    RoutingPolicy,
    Trigger,
    TriggerKind,
)

P1 = 1
P4 = 4


def sends_report(incident: IncidentView) -> bool:
    """An opened incident is e-mailed to the support address: every automatic one, and a
    question (P4 opened by a person)."""
    return incident.automatic or incident.priority == P4


def idempotency_key(
    trigger: Trigger, incident: int | None, kind: str, channel: Channel, to: str
) -> str:
    at = trigger.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    number = incident if incident is not None else "-"
    return f"{number}:{kind}:{at}:{trigger.generation}:{channel}:{to}"


class _Outbox:
    """Collects the messages of one trigger, dropping repeats to the same recipient."""

    def __init__(self, trigger: Trigger, incident: IncidentView) -> None:
        self.trigger = trigger
        self.incident = incident
        self.messages: list[OutgoingMessage] = []
        self._seen: set[tuple[Channel, str]] = set()

    def add(
        self,
        channel: Channel,
        recipients: Iterable[str],
        kind: str,
        text: str,
        subject: str = "",
        payload: dict[str, str] | None = None,
    ) -> None:
        for to in recipients:
            if not to or (channel, to) in self._seen:
                continue
            self._seen.add((channel, to))
            number = self.incident.number
            self.messages.append(
                OutgoingMessage(
                    channel=channel,
                    to=to,
                    kind=kind,
                    subject=subject,
                    text=text,
                    idempotency_key=idempotency_key(self.trigger, number, kind, channel, to),
                    incident=number,
                    at=self.trigger.at,
                    payload=dict(payload or {}),
                )
            )


def route(
    trigger: Trigger, incident: IncidentView, policy: RoutingPolicy, context: RoutingContext
) -> list[OutgoingMessage]:
    """The messages ``trigger`` calls for, per the rules in this module's docstring."""
    kind = trigger.kind
    oncall = context.oncall if context.oncall is not None else policy.oncall
    is_p1 = incident.priority == P1
    out = _Outbox(trigger, incident)
    sms = sms_text(trigger, incident, policy)
    voice = voice_text(trigger, incident, policy)
    voice_payload = {"sms": sms}
    support_line = (policy.support_line,) if context.in_support_hours else ()

    if kind is TriggerKind.OPENED:
        if sends_report(incident):
            report = email_report(incident, policy)
            out.add(
                "email",
                [policy.support_email],
                "report",
                report.text,
                report.subject,
                {"html": report.html},
            )
        out.add("sms", oncall, kind.value, sms)
        if is_p1:
            out.add("voice", [*oncall, *support_line], kind.value, voice, payload=voice_payload)
    elif kind is TriggerKind.RAISED:
        out.add("sms", oncall, kind.value, sms)
        if is_p1:
            out.add("voice", [*oncall, *support_line], kind.value, voice, payload=voice_payload)
    elif kind.is_sla_timer:
        out.add("sms", oncall, kind.value, sms)
        if is_p1:
            out.add("voice", oncall, kind.value, voice, payload=voice_payload)
    elif kind is TriggerKind.CONTINGENCY:
        line = contingency_call(policy, context.in_support_hours)
        out.add("sms", oncall, kind.value, sms)
        voice_to = [line, *oncall] if is_p1 else [line]
        out.add("voice", voice_to, kind.value, voice, payload=voice_payload)
    elif kind is TriggerKind.ESCALATED:
        step = trigger.escalation
        if step is None:
            raise ValueError("an 'escalated' trigger needs the escalation step it pages")
        if step.email:
            report = email_report(incident, policy, heading_prefix=f"Escalated to {step.name}: ")
            out.add(
                "email",
                [step.email],
                kind.value,
                report.text,
                report.subject,
                {"html": report.html},
            )
        out.add("sms", [*step.numbers, *oncall], kind.value, sms)
        if is_p1:
            landlines = step.landlines if context.in_support_hours else ()
            out.add(
                "voice",
                [*step.numbers, *landlines, *oncall],
                kind.value,
                voice,
                payload=voice_payload,
            )
    elif kind is TriggerKind.RESOLVED:
        if incident.automatic:
            mail = email_resolved(incident, trigger, policy)
            out.add(
                "email",
                [policy.support_email],
                kind.value,
                mail.text,
                mail.subject,
                {"html": mail.html},
            )
        out.add("sms", oncall, kind.value, sms)
    else:  # pragma: no cover - every TriggerKind is handled above
        raise ValueError(f"unknown trigger kind {kind!r}")
    return _ordered(out.messages)


_CHANNEL_ORDER: dict[Channel, int] = {"email": 0, "sms": 1, "voice": 2}


def _ordered(messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
    # sorted() is stable: within a channel the recipients keep the order they were added in.
    return sorted(messages, key=lambda m: _CHANNEL_ORDER[m.channel])
