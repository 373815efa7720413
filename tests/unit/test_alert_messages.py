"""Message text: SMS within one GSM-7 segment, voice sentences, TwiML, the e-mail report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from alerting.channels.twilio_voice import build_twiml
from alerting.messages import (
    email_report,
    email_resolved,
    evidence_line,
    scope_summary,
    sms_text,
    to_gsm7,
    voice_text,
)
from alerting.model import (
    CustomerView,
    EscalationTarget,
    IncidentView,
    RoutingPolicy,
    ScopeEntry,
    Trigger,
    TriggerKind,
)

POLICY = RoutingPolicy(oncall=("+31611111111",))
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
INCIDENT = IncidentView(
    number=12,
    customer=CustomerView("acme", "ACME B.V.", "Jan de Vries", "jan@acme.example", "+31201110000"),
    priority=1,
    automatic=True,
    opened_at=datetime(2026, 12, 1, 9, 3, tzinfo=UTC),
    description="Click2Dial fails for every user at location acme-ams.",
    priority_reason="click2dial unavailable for every user at acme-ams (3 failed rounds)",
    scope=(
        ScopeEntry("click2dial", "acme-ams", "alice", 1),
        ScopeEntry("click2dial", "acme-ams", "bob", 1),
        ScopeEntry("click2dial", "acme-ams", "carol", 1),
    ),
    evidence=(
        "2026-12-01T10:01:00+01:00 click2dial acme/acme-ams/alice FAIL status=503 <html>",
        "2026-12-01T10:02:00+01:00 click2dial acme/acme-ams/bob FAIL timeout after 10.000s",
    ),
    response_due=datetime(2026, 12, 1, 13, 3, tzinfo=UTC),
    update_due=datetime(2026, 12, 1, 13, 3, tzinfo=UTC),
)


def trigger(kind: TriggerKind, **extra: object) -> Trigger:
    return Trigger(kind=kind, at=AT, **extra)  # type: ignore[arg-type]


def test_opened_sms_names_priority_incident_customer_scope_and_the_ack_reply() -> None:
    assert sms_text(trigger(TriggerKind.OPENED), INCIDENT, POLICY) == (
        "CTIWATCH P1 #12 acme: click2dial down at acme-ams (3 users). Reply ACK 12"
    )


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        (TriggerKind.RAISED, {"previous_priority": 2},
         "CTIWATCH P1 #12 acme: raised P2 to P1: click2dial down at acme-ams (3 users). "
         "Reply ACK 12"),
        (TriggerKind.RESPONSE_WARNING, {"due": datetime(2026, 12, 1, 13, 3, tzinfo=UTC)},
         "CTIWATCH P1 #12 acme: response due Tue 01 Dec 14:03: click2dial down at acme-ams "
         "(3 users). Reply ACK 12"),
        (TriggerKind.UPDATE_BREACH, {"due": datetime(2026, 12, 1, 13, 3, tzinfo=UTC)},
         "CTIWATCH P1 #12 acme: update target BREACHED (due Tue 01 Dec 14:03): click2dial down "
         "at acme-ams (3 users)"),
        (TriggerKind.ESCALATED, {"escalation": EscalationTarget("second line")},
         "CTIWATCH ESCALATED to second line, not acknowledged: P1 #12 acme: click2dial down at "
         "acme-ams (3 users). Reply ACK 12"),
        (TriggerKind.CONTINGENCY, {"reason": "2 customers have an open P1"},
         "CTIWATCH CONTINGENCY. 2 customers have an open P1. P1 #12 acme: click2dial down at "
         "acme-ams (3 users). Reply ACK 12"),
    ],
)  # fmt: skip
def test_sms_text_per_trigger(kind: TriggerKind, extra: dict[str, object], expected: str) -> None:
    assert sms_text(trigger(kind, **extra), INCIDENT, POLICY) == expected


def test_resolved_sms_says_who_resolved() -> None:
    incident = replace(INCIDENT, resolved_by="auto")
    assert sms_text(trigger(TriggerKind.RESOLVED), incident, POLICY) == (
        "CTIWATCH resolved automatically: P1 #12 acme: click2dial down at acme-ams (3 users)"
    )


def test_long_scope_is_shortened_to_one_sms_segment_keeping_the_ack_reply() -> None:
    scope = tuple(
        ScopeEntry("crm", f"location-number-{i}", "u", 2, "calls unrecognised") for i in range(9)
    )
    text = sms_text(trigger(TriggerKind.OPENED), replace(INCIDENT, scope=scope), POLICY)
    assert len(text) == 160
    assert text.startswith("CTIWATCH P1 #12 acme: crm calls unrecognised at location-number-0")
    assert text.endswith("... Reply ACK 12")


def test_sms_text_is_gsm7_ascii_without_emoji() -> None:
    incident = replace(
        INCIDENT, customer=CustomerView("acme", "Café Zoë"), scope=(), title="Bad “quotes” 📞 – ok"
    )
    text = sms_text(trigger(TriggerKind.OPENED), incident, POLICY)
    assert text == 'CTIWATCH P1 #12 acme: Bad "quotes" ? - ok. Reply ACK 12'
    assert text.isascii()


@pytest.mark.parametrize(
    ("raw", "gsm"),
    [("Zoë Straße", "Zoe Strasse"), ("€5 `x`", "EUR5 'x'"), ("日本", "??"), ("a\tb", "a b")],
)
def test_to_gsm7_transliterates(raw: str, gsm: str) -> None:
    assert to_gsm7(raw) == gsm


def test_scope_summary_groups_by_service_and_location() -> None:
    incident = replace(
        INCIDENT,
        scope=(
            ScopeEntry("click2dial", "acme-ams", None, 1),
            ScopeEntry("crm", "acme-rtm", "dave", 2, "degraded"),
        ),
    )
    assert scope_summary(incident) == (
        "click2dial down at acme-ams (all users); crm degraded at acme-rtm (1 user)"
    )


def test_voice_text_reads_the_alert() -> None:
    assert voice_text(trigger(TriggerKind.OPENED), INCIDENT, POLICY) == (
        "This is ctiwatch. New priority 1 incident for ACME B.V., number 12. "
        "click2dial down at acme-ams (3 users)."
    )


def test_twiml_reads_the_alert_then_gathers_one_digit_to_acknowledge() -> None:
    twiml = build_twiml("Alert text.", 12, "https://ctiwatch.example/")
    assert twiml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Say language="en-GB">Alert text.</Say>'
        '<Gather action="https://ctiwatch.example/twilio/voice/gather?incident=12" '
        'method="POST" numDigits="1" timeout="10">'
        '<Say language="en-GB">Press 1 to acknowledge incident 12.</Say></Gather>'
        '<Say language="en-GB">No key was pressed. The alert is repeated by SMS. Goodbye.</Say>'
        "</Response>"
    )


def test_report_email_holds_everything_a_complete_report_holds() -> None:
    report = email_report(INCIDENT, POLICY)
    assert report.subject == (
        "[ctiwatch] P1 Critical incident #12 - ACME B.V.: click2dial down at acme-ams (3 users)"
    )
    text = report.text
    for expected in (
        "Incident report #12: ACME B.V.",
        "  Name:     ACME B.V. (acme)",
        "  Contact:  Jan de Vries, jan@acme.example, +31201110000",
        "  Click2Dial fails for every user at location acme-ams.",
        "  P1 Critical: click2dial unavailable for every user at acme-ams (3 failed rounds)",
        "  Tue 2026-12-01 10:03 (CET)",
        "  Response due: Tue 2026-12-01 14:03 (CET)",
        "  Repair due:   to be determined",
        "  click2dial down at acme-ams: alice, bob, carol (P1)",
        "  2026-12-01T10:01:00+01:00 click2dial acme/acme-ams/alice FAIL status=503 <html>",
        "  2026-12-01T10:02:00+01:00 click2dial acme/acme-ams/bob FAIL timeout after 10.000s",
    ):
        assert expected + "\n" in text
    # The HTML part escapes what the probes saw.
    assert "FAIL status=503 &lt;html&gt;" in report.html
    assert "<html>\n" not in report.html.split("<body", 1)[1]


def test_report_and_resolved_emails_link_to_the_incident_at_the_public_url() -> None:
    policy = replace(POLICY, public_url="https://ctiwatch.example.net/")
    report = email_report(INCIDENT, policy)
    resolved = email_resolved(INCIDENT, trigger(TriggerKind.RESOLVED), policy)
    for mail in (report, resolved):
        assert "Open in ctiwatch: https://ctiwatch.example.net/incidents/12\n" in mail.text
        assert '<a href="https://ctiwatch.example.net/incidents/12"' in mail.html
    assert "http://127.0.0.1:8080/incidents/12" in email_report(INCIDENT, POLICY).text


def test_report_email_html_is_styled_inline_and_escapes_the_customer_text() -> None:
    hostile = replace(
        INCIDENT,
        customer=replace(INCIDENT.customer, name='<script>alert("x")</script>'),
        description="a & b <i>",
    )
    html = email_report(hostile, POLICY).html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "a &amp; b &lt;i&gt;" in html
    assert "<style" not in html and "<link" not in html  # mail clients drop both
    assert 'style="' in html.split("<body", 1)[1]


def test_report_email_shows_the_probe_log_lines_times_in_local_time() -> None:
    # The classifier writes each line with the result's instant in UTC (classifier.rules).
    lines = (
        "2026-12-01T09:01:03Z acme-ams/alice POST http://sim/calls [STATUS] (503) == 2xx",
        "2026-07-01T09:01:03Z acme-ams/bob GET http://sim/crm [STATUS] (503) == 2xx",
        "2026-13-01T09:01:03Z not a time, left as it came",
    )
    report = email_report(replace(INCIDENT, evidence=lines), POLICY)
    for expected in (
        "  2026-12-01 10:01:03 CET acme-ams/alice POST http://sim/calls [STATUS] (503) == 2xx\n",
        "  2026-07-01 11:01:03 CEST acme-ams/bob GET http://sim/crm [STATUS] (503) == 2xx\n",
        "  2026-13-01T09:01:03Z not a time, left as it came\n",
    ):
        assert expected in report.text
    assert "2026-12-01 10:01:03 CET acme-ams/alice" in report.html
    assert "T09:01:03Z acme-ams" not in report.text + report.html


def test_evidence_line_converts_only_the_leading_instant_of_a_long_line() -> None:
    line = "2026-12-01T09:01:03Z " + "9" * 200_000
    assert evidence_line(line, "Europe/Amsterdam").startswith("2026-12-01 10:01:03 CET 999")
    assert evidence_line("1" * 200_000, "Europe/Amsterdam") == "1" * 200_000


def test_without_a_public_url_the_emails_carry_no_link_and_read_the_same() -> None:
    linked = email_report(INCIDENT, POLICY)
    report = email_report(INCIDENT, replace(POLICY, public_url=None))
    resolved = email_resolved(
        INCIDENT, trigger(TriggerKind.RESOLVED), replace(POLICY, public_url=None)
    )
    for mail in (report, resolved):
        assert "Open in ctiwatch" not in mail.text and "/incidents/" not in mail.text
        assert "<a " not in mail.html and "/incidents/" not in mail.html
    assert report.text == linked.text.replace(
        "\nOpen in ctiwatch: http://127.0.0.1:8080/incidents/12\n", ""
    )
    assert "ACK 12" in report.html
