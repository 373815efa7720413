"""Routing table of sla.md "Who is called": every trigger x support hours x P1/P2/P3."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from alerting.model import (
    CustomerView,
    EscalationTarget,
    IncidentView,
    RoutingContext,
    RoutingPolicy,
    ScopeEntry,
    Trigger,
    TriggerKind,
)
from alerting.routing import route

A = "+31611111111"
B = "+31622222222"
C = "+31633333333"
SUPPORT = "+31356990230"
CONTINGENCY = "+31356990244"
MAIL = "support@cloudcti.nl"
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
POLICY = RoutingPolicy(oncall=(A, B))
SECOND_LINE = EscalationTarget("second line", numbers=(C,))


def make_incident(priority: int, automatic: bool = True) -> IncidentView:
    return IncidentView(
        number=12,
        customer=CustomerView("acme", "ACME B.V."),
        priority=priority,
        automatic=automatic,
        opened_at=datetime(2026, 12, 1, 9, 3, tzinfo=UTC),
        scope=(ScopeEntry("click2dial", "acme-ams", "alice", priority),),
        response_due=datetime(2026, 12, 1, 13, 3, tzinfo=UTC),
    )


def make_trigger(kind: TriggerKind) -> Trigger:
    return Trigger(
        kind=kind,
        at=AT,
        due=datetime(2026, 12, 1, 13, 3, tzinfo=UTC) if kind.is_sla_timer else None,
        escalation=SECOND_LINE if kind is TriggerKind.ESCALATED else None,
        reason="2 customers have an open P1" if kind is TriggerKind.CONTINGENCY else "",
        previous_priority=2 if kind is TriggerKind.RAISED else None,
    )


def sent(kind: TriggerKind, priority: int, inside: bool) -> list[str]:
    context = RoutingContext(in_support_hours=inside, open_p1_customers=0)
    messages = route(make_trigger(kind), make_incident(priority), POLICY, context)
    return [f"{m.channel} {m.to} {m.kind}" for m in messages]


TIMER_KINDS = [
    "response_warning",
    "response_breach",
    "update_warning",
    "update_breach",
    "repair_warning",
    "repair_breach",
]

# (trigger, priority, inside support hours) -> exactly these messages, in this order
TABLE: list[tuple[str, int, bool, list[str]]] = [
    ("opened", 1, True, [f"email {MAIL} report", f"sms {A} opened", f"sms {B} opened",
                         f"voice {A} opened", f"voice {B} opened", f"voice {SUPPORT} opened"]),
    ("opened", 1, False, [f"email {MAIL} report", f"sms {A} opened", f"sms {B} opened",
                          f"voice {A} opened", f"voice {B} opened"]),
    ("opened", 2, True, [f"email {MAIL} report", f"sms {A} opened", f"sms {B} opened"]),
    ("opened", 2, False, [f"email {MAIL} report", f"sms {A} opened", f"sms {B} opened"]),
    ("opened", 3, True, [f"email {MAIL} report", f"sms {A} opened", f"sms {B} opened"]),
    ("opened", 3, False, [f"email {MAIL} report", f"sms {A} opened", f"sms {B} opened"]),
    ("raised", 1, True, [f"sms {A} raised", f"sms {B} raised", f"voice {A} raised",
                         f"voice {B} raised", f"voice {SUPPORT} raised"]),
    ("raised", 1, False, [f"sms {A} raised", f"sms {B} raised", f"voice {A} raised",
                          f"voice {B} raised"]),
    ("raised", 2, True, [f"sms {A} raised", f"sms {B} raised"]),
    ("raised", 2, False, [f"sms {A} raised", f"sms {B} raised"]),
    ("raised", 3, True, [f"sms {A} raised", f"sms {B} raised"]),
    ("raised", 3, False, [f"sms {A} raised", f"sms {B} raised"]),
    *[
        (kind, 1, inside, [f"sms {A} {kind}", f"sms {B} {kind}", f"voice {A} {kind}",
                           f"voice {B} {kind}"])
        for kind in TIMER_KINDS
        for inside in (True, False)
    ],
    *[
        (kind, priority, inside, [f"sms {A} {kind}", f"sms {B} {kind}"])
        for kind in TIMER_KINDS
        for priority in (2, 3)
        for inside in (True, False)
    ],
    ("contingency", 1, True, [f"sms {A} contingency", f"sms {B} contingency",
                              f"voice {SUPPORT} contingency", f"voice {A} contingency",
                              f"voice {B} contingency"]),
    ("contingency", 1, False, [f"sms {A} contingency", f"sms {B} contingency",
                               f"voice {CONTINGENCY} contingency", f"voice {A} contingency",
                               f"voice {B} contingency"]),
    *[
        ("contingency", priority, True, [f"sms {A} contingency", f"sms {B} contingency",
                                         f"voice {SUPPORT} contingency"])
        for priority in (2, 3)
    ],
    *[
        ("contingency", priority, False, [f"sms {A} contingency", f"sms {B} contingency",
                                          f"voice {CONTINGENCY} contingency"])
        for priority in (2, 3)
    ],
    *[
        ("escalated", 1, inside, [f"sms {C} escalated", f"sms {A} escalated",
                                  f"sms {B} escalated", f"voice {C} escalated",
                                  f"voice {A} escalated", f"voice {B} escalated"])
        for inside in (True, False)
    ],
    *[
        ("escalated", priority, inside, [f"sms {C} escalated", f"sms {A} escalated",
                                         f"sms {B} escalated"])
        for priority in (2, 3)
        for inside in (True, False)
    ],
    *[
        ("resolved", priority, inside, [f"email {MAIL} resolved", f"sms {A} resolved",
                                        f"sms {B} resolved"])
        for priority in (1, 2, 3)
        for inside in (True, False)
    ],
]  # fmt: skip


def test_the_table_covers_every_trigger_hours_and_priority() -> None:
    cases = {(kind, priority, inside) for kind, priority, inside, _ in TABLE}
    expected = {
        (kind.value, priority, inside)
        for kind in TriggerKind
        for priority in (1, 2, 3)
        for inside in (True, False)
    }
    assert cases == expected
    assert len(TABLE) == 66


@pytest.mark.parametrize(
    ("kind", "priority", "inside", "expected"),
    TABLE,
    ids=[f"{k}-P{p}-{'inside' if i else 'outside'}" for k, p, i, _ in TABLE],
)
def test_routing_table(kind: str, priority: int, inside: bool, expected: list[str]) -> None:
    assert sent(TriggerKind(kind), priority, inside) == expected


def test_incident_opened_by_a_person_sends_no_email_report() -> None:
    context = RoutingContext(in_support_hours=True)
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(2, automatic=False),
                     POLICY, context)  # fmt: skip
    assert [(m.channel, m.to) for m in messages] == [("sms", A), ("sms", B)]


def test_question_opened_by_a_person_is_emailed_to_the_support_address() -> None:
    context = RoutingContext(in_support_hours=True)
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(4, automatic=False),
                     POLICY, context)  # fmt: skip
    assert [(m.channel, m.to, m.kind) for m in messages] == [
        ("email", POLICY.support_email, "report"),
        ("sms", A, "opened"),
        ("sms", B, "opened"),
    ]
    assert messages[0].subject == (
        "[ctiwatch] P4 Low incident #12 - ACME B.V.: click2dial down at acme-ams (1 user)"
    )


def test_resolved_incident_opened_by_a_person_sends_sms_only() -> None:
    context = RoutingContext(in_support_hours=False)
    messages = route(make_trigger(TriggerKind.RESOLVED), make_incident(1, automatic=False),
                     POLICY, context)  # fmt: skip
    assert [(m.channel, m.to, m.kind) for m in messages] == [
        ("sms", A, "resolved"),
        ("sms", B, "resolved"),
    ]


def test_rotation_in_the_context_replaces_the_configured_oncall_list() -> None:
    context = RoutingContext(in_support_hours=False, oncall=(C,))
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(1), POLICY, context)
    assert [(m.channel, m.to) for m in messages] == [
        ("email", MAIL),
        ("sms", C),
        ("voice", C),
    ]


def test_third_line_escalation_sends_the_report_again_and_calls_the_support_line() -> None:
    third = EscalationTarget("third line", landlines=(SUPPORT,), email=MAIL)
    trigger = replace(make_trigger(TriggerKind.ESCALATED), escalation=third)
    inside = route(trigger, make_incident(1), POLICY, RoutingContext(in_support_hours=True))
    outside = route(trigger, make_incident(1), POLICY, RoutingContext(in_support_hours=False))
    assert [(m.channel, m.to, m.kind) for m in inside] == [
        ("email", MAIL, "escalated"),
        ("sms", A, "escalated"),
        ("sms", B, "escalated"),
        ("voice", SUPPORT, "escalated"),
        ("voice", A, "escalated"),
        ("voice", B, "escalated"),
    ]
    assert inside[0].subject == (
        "[ctiwatch] Escalated to third line: P1 Critical incident #12 - ACME B.V.: "
        "click2dial down at acme-ams (1 user)"
    )
    assert [(m.channel, m.to, m.kind) for m in outside] == [
        ("email", MAIL, "escalated"),
        ("sms", A, "escalated"),
        ("sms", B, "escalated"),
        ("voice", A, "escalated"),
        ("voice", B, "escalated"),
    ]


def test_oncall_sms_about_an_escalation_names_the_paged_step() -> None:
    messages = route(make_trigger(TriggerKind.ESCALATED), make_incident(2), POLICY,
                     RoutingContext(in_support_hours=True))  # fmt: skip
    assert [m.text for m in messages if m.to == A] == [
        "CTIWATCH ESCALATED to second line, not acknowledged: P2 #12 acme: click2dial down at "
        "acme-ams (1 user). Reply ACK 12"
    ]


def test_oncall_number_that_is_also_in_the_paged_step_gets_each_channel_once() -> None:
    step = EscalationTarget("second line", numbers=(C, B))
    trigger = replace(make_trigger(TriggerKind.ESCALATED), escalation=step)
    messages = route(trigger, make_incident(1), POLICY, RoutingContext(in_support_hours=True))
    assert [(m.channel, m.to) for m in messages] == [
        ("sms", C),
        ("sms", B),
        ("sms", A),
        ("voice", C),
        ("voice", B),
        ("voice", A),
    ]
    assert len({m.idempotency_key for m in messages}) == len(messages)


def test_support_line_on_the_oncall_list_gets_one_contingency_call() -> None:
    policy = replace(POLICY, oncall=(SUPPORT, A))
    messages = route(make_trigger(TriggerKind.CONTINGENCY), make_incident(1), policy,
                     RoutingContext(in_support_hours=True))  # fmt: skip
    assert [(m.channel, m.to) for m in messages] == [
        ("sms", SUPPORT),
        ("sms", A),
        ("voice", SUPPORT),
        ("voice", A),
    ]


def test_support_line_on_the_oncall_list_is_called_once() -> None:
    policy = replace(POLICY, oncall=(A, SUPPORT))
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(1), policy,
                     RoutingContext(in_support_hours=True))  # fmt: skip
    assert [(m.channel, m.to) for m in messages if m.channel == "voice"] == [
        ("voice", A),
        ("voice", SUPPORT),
    ]


def test_idempotency_keys_are_deterministic_and_distinct() -> None:
    context = RoutingContext(in_support_hours=True)
    first = route(make_trigger(TriggerKind.OPENED), make_incident(1), POLICY, context)
    again = route(make_trigger(TriggerKind.OPENED), make_incident(1), POLICY, context)
    assert [m.idempotency_key for m in first] == [m.idempotency_key for m in again]
    assert len({m.idempotency_key for m in first}) == len(first)
    assert first[1].idempotency_key == "12:opened:2026-12-01T09:30:00.000000Z:0:sms:+31611111111"
    later = route(replace(make_trigger(TriggerKind.OPENED), generation=1), make_incident(1),
                  POLICY, context)  # fmt: skip
    assert later[1].idempotency_key == "12:opened:2026-12-01T09:30:00.000000Z:1:sms:+31611111111"


def test_every_message_carries_incident_and_trigger_instant() -> None:
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(1), POLICY,
                     RoutingContext(in_support_hours=True))  # fmt: skip
    assert {(m.incident, m.at) for m in messages} == {(12, AT)}


def test_voice_messages_carry_their_sms_text_for_the_fallback() -> None:
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(1), POLICY,
                     RoutingContext(in_support_hours=False))  # fmt: skip
    sms = next(m for m in messages if m.channel == "sms")
    voice = next(m for m in messages if m.channel == "voice")
    assert voice.payload == {"sms": sms.text}


def test_report_email_carries_an_html_alternative() -> None:
    messages = route(make_trigger(TriggerKind.OPENED), make_incident(2), POLICY,
                     RoutingContext(in_support_hours=True))  # fmt: skip
    assert messages[0].channel == "email"
    assert messages[0].payload["html"].startswith("<!doctype html>")


def test_escalated_trigger_without_a_step_is_refused() -> None:
    trigger = Trigger(kind=TriggerKind.ESCALATED, at=AT)
    with pytest.raises(ValueError, match="needs the escalation step"):
        route(trigger, make_incident(1), POLICY, RoutingContext(in_support_hours=True))
