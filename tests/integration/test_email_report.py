"""The e-mail report through a real SMTP conversation with the project's local SMTP server."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from alerting.channels import TransportError
from alerting.channels.email import SmtpEmail, message_id
from alerting.model import (
    CustomerView,
    IncidentView,
    RoutingContext,
    RoutingPolicy,
    ScopeEntry,
    Trigger,
    TriggerKind,
)
from alerting.outbox import MemoryOutbox, PendingMessage
from alerting.routing import route
from alerting.sender import OutboxSender
from ctiwatch.clock import FixedClock
from ctiwatch.config import SmtpConfig
from ctiwatch.fakes import FakeSmtp

T0 = datetime(2026, 12, 1, 9, 3, tzinfo=UTC)  # Tue 10:03 CET
INCIDENT = IncidentView(
    number=12,
    customer=CustomerView(
        "acme", "ACME <B.V.>", "Jan de Vries", "jan@acme.example", "+31201110000"
    ),
    priority=2,
    automatic=True,
    opened_at=T0,
    description="Click2Dial fails for alice and bob at acme-ams.",
    priority_reason="click2dial unavailable for some users at acme-ams (3 failed rounds)",
    scope=(
        ScopeEntry("click2dial", "acme-ams", "alice", 2),
        ScopeEntry("click2dial", "acme-ams", "bob", 2),
    ),
    evidence=(
        "2026-12-01T10:01:00+01:00 click2dial acme/acme-ams/alice FAIL status=503",
        "2026-12-01T10:02:00+01:00 click2dial acme/acme-ams/bob FAIL timeout after 10.000s",
    ),
    response_due=datetime(2026, 12, 2, 9, 33, tzinfo=UTC),
    update_due=datetime(2026, 12, 2, 9, 33, tzinfo=UTC),
    repair_due=datetime(2026, 12, 3, 16, 0, tzinfo=UTC),
)


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp(port=0) as server:
        yield server


def transport(smtp: FakeSmtp) -> SmtpEmail:
    config = SmtpConfig(host="127.0.0.1", port=smtp.port, sender="ctiwatch@example.net")
    return SmtpEmail(config, now=lambda: T0)


async def test_report_arrives_with_everything_a_complete_report_holds(smtp: FakeSmtp) -> None:
    messages = route(
        Trigger(TriggerKind.OPENED, at=T0),
        INCIDENT,
        RoutingPolicy(oncall=("+31611111111",)),
        RoutingContext(in_support_hours=True),
    )
    outbox = MemoryOutbox()
    ident = outbox.add(messages[0])
    [report] = await OutboxSender(outbox, {"email": transport(smtp)}, FixedClock(T0)).send_due()

    assert report.outcome == "sent"
    [mail] = smtp.messages
    assert mail.mail_from == "ctiwatch@example.net"
    assert mail.rcpt_tos == ("support@cloudcti.nl",)
    assert mail.subject == (
        "[ctiwatch] P2 High incident #12 - ACME <B.V.>: click2dial down at acme-ams (2 users)"
    )
    assert mail.message["Message-ID"] == message_id(messages[0].idempotency_key)
    assert outbox.row(ident).provider_id == mail.message["Message-ID"]
    assert mail.message["X-Ctiwatch-Incident"] == "12"
    assert mail.message["X-Ctiwatch-Kind"] == "report"
    assert mail.message["Date"] == "Tue, 01 Dec 2026 09:03:00 +0000"
    assert mail.text == (
        "Incident report #12: ACME <B.V.>\n"
        "\n"
        "Open in ctiwatch: http://127.0.0.1:8080/incidents/12\n"
        "\n"
        "Customer\n"
        "  Name:     ACME <B.V.> (acme)\n"
        "  Contact:  Jan de Vries, jan@acme.example, +31201110000\n"
        "\n"
        "Description\n"
        "  Click2Dial fails for alice and bob at acme-ams.\n"
        "\n"
        "Priority\n"
        "  P2 High: click2dial unavailable for some users at acme-ams (3 failed rounds)\n"
        "\n"
        "Reported\n"
        "  Tue 2026-12-01 10:03 (CET)\n"
        "  Automatic:   yes, by ctiwatch's probes\n"
        "\n"
        "Deadlines (SLA)\n"
        "  Response due: Wed 2026-12-02 10:33 (CET)\n"
        "  Update due:   Wed 2026-12-02 10:33 (CET)\n"
        "  Repair due:   Thu 2026-12-03 17:00 (CET)\n"
        "\n"
        "Affected locations and users\n"
        "  click2dial down at acme-ams: alice, bob (P2)\n"
        "\n"
        "Probe evidence (log lines of the failing checks)\n"
        "  2026-12-01T10:01:00+01:00 click2dial acme/acme-ams/alice FAIL status=503\n"
        "  2026-12-01T10:02:00+01:00 click2dial acme/acme-ams/bob FAIL timeout after 10.000s\n"
        "\n"
        "Sent by ctiwatch. On-call staff acknowledge incident #12 by SMS: ACK 12\n"
    )
    assert re.search(r"<h1 style=\"[^\"]*\">Incident report #12: ACME &lt;B.V.&gt;</h1>", mail.html)
    assert '<a href="http://127.0.0.1:8080/incidents/12"' in mail.html
    assert mail.message.get_content_type() == "multipart/alternative"
    assert "<li>click2dial down at acme-ams: alice, bob (P2)</li>" in mail.html


def pending(to: str = "support@cloudcti.nl") -> PendingMessage:
    return PendingMessage(1, "k-mail", 12, "email", to, "report", "Subject", "Body")


async def test_temporary_smtp_refusal_is_retried(smtp: FakeSmtp) -> None:
    smtp.reject_next(1, 451, "try again later")
    outbox = MemoryOutbox()
    clock = FixedClock(T0)
    sender = OutboxSender(outbox, {"email": transport(smtp)}, clock)
    receipt = await sender.deliver(pending())
    assert receipt.status == "accepted"
    assert [m.subject for m in smtp.messages] == ["Subject"]


async def test_permanent_smtp_refusal_is_permanent(smtp: FakeSmtp) -> None:
    smtp.reject_next(1, 550, "mailbox unavailable")
    with pytest.raises(TransportError) as caught:
        await transport(smtp).send(pending())
    assert caught.value.permanent is True
    assert caught.value.message == (
        "e-mail to support@cloudcti.nl: SMTP server answered 550 mailbox unavailable"
    )
    assert smtp.messages == []


async def test_unreachable_smtp_server_is_temporary() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nothing listens once closed
    email = SmtpEmail(SmtpConfig(host="127.0.0.1", port=port), timeout=5)
    with pytest.raises(TransportError) as caught:
        await email.send(pending())
    assert caught.value.permanent is False
    assert caught.value.message.startswith("e-mail to support@cloudcti.nl: cannot reach")
