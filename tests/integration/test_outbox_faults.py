"""Faults around sending, through the real channels (the twilio client, aiosmtplib) to the
project's fake Twilio and SMTP servers, with the outbox in the real store (SQLite and
PostgreSQL): Twilio answering 500, 429 with Retry-After, or not at all; the SMTP server down,
then back; a message that cannot be sent among the pages claimed with it. Each ends with every
alert delivered once: none lost, none sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from alerting.channels import open_channels
from alerting.channels.email import SmtpEmail
from alerting.model import (
    CustomerView,
    IncidentView,
    OutgoingMessage,
    RoutingContext,
    RoutingPolicy,
    ScopeEntry,
    Trigger,
    TriggerKind,
)
from alerting.outbox import MemoryOutbox, outbox_fields
from alerting.routing import route
from alerting.sender import OutboxSender, RetryPolicy
from ctiwatch.clock import FixedClock, LoopClock, run_in_virtual_time
from ctiwatch.config import AlertingConfig, SmtpConfig, TwilioConfig
from ctiwatch.fakes import FakeSmtp, FakeTwilio
from ctiwatch.storage import OutboxMessage as OutboxRow
from ctiwatch.storage import Store

SID = "AC" + "3" * 32
TOKEN = "fault-token"
FROM = "+3197010000003"
HOOKS = "https://ctiwatch.example.net"
A, B = "+31611111111", "+31622222222"
T0 = datetime(2026, 12, 1, 9, 3, tzinfo=UTC)  # Tue 10:03 CET, in support hours


def settings(twilio: FakeTwilio, smtp_port: int = 25) -> AlertingConfig:
    return AlertingConfig(
        oncall=[A, B],
        twilio=TwilioConfig(
            account_sid=SID, auth_token=TOKEN, from_number=FROM, base_url=twilio.url,
            webhook_base_url=HOOKS,
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=smtp_port, sender="ctiwatch@example.net"),
    )  # fmt: skip


def fake_twilio(clock: FixedClock | LoopClock, hang_seconds: float = 120.0) -> FakeTwilio:
    return FakeTwilio(
        account_sid=SID, auth_token=TOKEN, webhook_base_url=HOOKS, from_number=FROM,
        clock=clock, hang_seconds=hang_seconds,
    )  # fmt: skip


def sms_row(key: str, to: str = A) -> OutboxRow:
    return OutboxRow(
        idempotency_key=key,
        incident_number=None,
        channel="sms",
        recipient=to,
        kind="opened",
        body="CTIWATCH P1 #7 acme: click2dial down",
        created_at=T0,
    )


async def statuses(store: Store) -> dict[str, tuple[str, int, str | None]]:
    return {
        m.idempotency_key: (m.status, m.attempts, m.provider_id) for m in await store.outbox.list()
    }


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[FakeTwilio, FixedClock]]:
    clock = FixedClock(T0)
    async with fake_twilio(clock) as fake:
        yield fake, clock


async def test_twilio_answering_500_twice_is_retried_and_the_sms_sent_once(
    store: Store, twilio: tuple[FakeTwilio, FixedClock]
) -> None:
    fake, clock = twilio
    await store.outbox.enqueue(sms_row("7:opened:sms:a"))
    fake.fail_next(2, "500")
    async with open_channels(settings(fake)) as channels:
        [report] = await OutboxSender(store.outbox, channels, clock).send_due()

    assert (report.outcome, report.at) == ("sent", T0 + timedelta(seconds=3))  # +1 s, +2 s
    assert fake.requests == 3
    assert [(m.to, m.idempotency_key, m.at) for m in fake.messages] == [
        (A, "7:opened:sms:a", T0 + timedelta(seconds=3))
    ]
    assert await statuses(store) == {"7:opened:sms:a": ("sent", 0, fake.nth_sid("SM", 1))}


async def test_twilio_429_with_a_short_retry_after_is_waited_out_in_the_same_claim(
    store: Store, twilio: tuple[FakeTwilio, FixedClock]
) -> None:
    fake, clock = twilio
    await store.outbox.enqueue(sms_row("7:opened:sms:a"))
    fake.fail_next(1, "429", retry_after=7)
    async with open_channels(settings(fake)) as channels:
        [report] = await OutboxSender(store.outbox, channels, clock).send_due()

    # Not after the 1 s backoff: after the 7 s Twilio asked for.
    assert (report.outcome, report.at) == ("sent", T0 + timedelta(seconds=7))
    assert [(m.idempotency_key, m.at) for m in fake.messages] == [
        ("7:opened:sms:a", T0 + timedelta(seconds=7))
    ]
    assert fake.duplicates == []


async def test_twilio_429_asking_for_longer_than_a_claim_waits_requeues_it_until_then(
    store: Store, twilio: tuple[FakeTwilio, FixedClock]
) -> None:
    fake, clock = twilio
    await store.outbox.enqueue(sms_row("7:opened:sms:a"))
    fake.fail_next(1, "429", retry_after=300)
    async with open_channels(settings(fake)) as channels:
        sender = OutboxSender(store.outbox, channels, clock, retry=RetryPolicy(max_backoff=30))
        [first] = await sender.send_due()
        [row] = await store.outbox.list()
        clock.set(T0 + timedelta(seconds=299))
        early = await sender.send_due()
        clock.set(T0 + timedelta(seconds=300))
        [second] = await sender.send_due()

    assert first.outcome == "retry"
    assert first.error == (
        "SMS to +31611111111: Twilio answered HTTP 429: Unable to create record: "
        "Too Many Requests (injected)"
    )
    assert fake.requests == 2  # one 429, no try before the asked-for time, then the send
    assert (row.status, row.not_before, row.attempts) == ("pending", T0 + timedelta(seconds=300), 1)
    assert early == []
    assert (second.outcome, second.at) == ("sent", T0 + timedelta(seconds=300))
    assert [m.idempotency_key for m in fake.messages] == ["7:opened:sms:a"]
    assert await statuses(store) == {"7:opened:sms:a": ("sent", 1, fake.nth_sid("SM", 1))}


def test_twilio_not_answering_is_retried_after_the_timeout_and_the_call_made_once() -> None:
    # In virtual time (the 10 s timeout passes at once), so with the outbox in memory: the
    # store's threads would let the virtual clock run on while they work.
    async def main() -> tuple[str, datetime, int, list[str | None], list[str], str]:
        clock = LoopClock()
        async with fake_twilio(clock, hang_seconds=300) as fake:
            outbox = MemoryOutbox()
            ident = outbox.add(
                OutgoingMessage("voice", A, "opened", "", "This is ctiwatch.", "7:opened:voice:a",
                                None, T0)
            )  # fmt: skip
            fake.fail_next(1, "timeout")  # no answer; nothing created
            async with open_channels(settings(fake), timeout=10) as channels:
                [report] = await OutboxSender(outbox, channels, clock).send_due()
            keys = [c.idempotency_key for c in fake.calls]
            status = outbox.row(ident).status
            return report.outcome, report.at, fake.requests, keys, fake.duplicates, status

    outcome, at, requests, keys, duplicates, status = run_in_virtual_time(T0, main)
    assert (outcome, status) == ("sent", "sent")
    assert at == T0 + timedelta(seconds=11)  # 10 s timeout, 1 s backoff, then answered
    assert requests == 2
    assert (keys, duplicates) == (["7:opened:voice:a"], [])


async def test_the_smtp_server_down_then_back_delivers_the_report_once(store: Store) -> None:
    clock = FixedClock(T0)
    async with FakeSmtp(port=0) as first:
        port = first.port
    # Down: nothing listens on the port.
    email = SmtpEmail(SmtpConfig(host="127.0.0.1", port=port, sender="c@example.net"), timeout=5)
    await store.outbox.enqueue(
        OutboxRow(
            idempotency_key="7:report:email:support",
            incident_number=None,
            channel="email",
            recipient="support@cloudcti.nl",
            kind="report",
            subject="[ctiwatch] P1 Critical incident #7",
            body="report",
            created_at=T0,
        )
    )
    sender = OutboxSender(store.outbox, {"email": email}, clock)
    [down] = await sender.send_due()
    [row] = await store.outbox.list()

    assert down.outcome == "retry"
    assert down.error.startswith("e-mail to support@cloudcti.nl: cannot reach the SMTP server")
    assert (row.status, row.attempts, row.not_before) == (
        "pending",
        1,
        T0 + timedelta(seconds=3) + timedelta(minutes=1),  # after 3 tries: 1 min later
    )

    async with FakeSmtp(port=port) as back:
        clock.set(row.not_before or T0)
        [up] = await sender.send_due()
        assert await sender.send_due() == []
        received = [(m.subject, m.rcpt_tos) for m in back.messages]
        duplicates = back.duplicates

    assert up.outcome == "sent"
    assert received == [("[ctiwatch] P1 Critical incident #7", ("support@cloudcti.nl",))]
    assert duplicates == []
    assert [(s, a) for s, a, _ in (await statuses(store)).values()] == [("sent", 1)]


INCIDENT = IncidentView(
    number=12,
    customer=CustomerView("acme", "ACME\r\nBcc: intruder@example.net", None, None, None),
    priority=1,
    automatic=True,
    opened_at=T0,
    description="Click2Dial fails for everyone at acme-ams.",
    priority_reason="click2dial unavailable for all users at acme-ams",
    scope=(ScopeEntry("click2dial", "acme-ams", None, 1),),
    evidence=(),
    response_due=T0 + timedelta(minutes=30),
    update_due=T0 + timedelta(hours=1),
    repair_due=T0 + timedelta(hours=4),
)


async def test_a_p1_for_a_customer_whose_name_has_a_line_break_mails_pages_and_calls_everyone(
    store: Store, twilio: tuple[FakeTwilio, FixedClock]
) -> None:
    fake, clock = twilio
    messages = route(
        Trigger(TriggerKind.OPENED, at=T0),
        INCIDENT,
        RoutingPolicy(oncall=(A,)),
        RoutingContext(in_support_hours=True),
    )
    for message in messages:
        # No incident row in this store: the messages stand alone.
        await store.outbox.enqueue(OutboxRow(**{**outbox_fields(message), "incident_number": None}))
    async with FakeSmtp(port=0) as smtp, open_channels(settings(fake, smtp.port)) as channels:
        reports = await OutboxSender(store.outbox, channels, clock).send_due()
        mails = list(smtp.messages)

    assert [(r.channel, r.recipient, r.outcome) for r in reports] == [
        ("email", "support@cloudcti.nl", "sent"),
        ("sms", A, "sent"),
        ("voice", A, "sent"),
        ("voice", "+31356990230", "sent"),
    ]
    [mail] = mails
    assert mail.subject == (
        "[ctiwatch] P1 Critical incident #12 - ACME Bcc: intruder@example.net: "
        "click2dial down at acme-ams (all users)"
    )
    assert mail.rcpt_tos == ("support@cloudcti.nl",)
    assert mail.message["Bcc"] is None
    assert [m.to for m in fake.messages] + [c.to for c in fake.calls] == [A, A, "+31356990230"]
    assert {s for s, _, _ in (await statuses(store)).values()} == {"sent"}


async def test_a_mail_queued_with_a_line_break_in_its_subject_goes_out_on_one_line(
    store: Store, twilio: tuple[FakeTwilio, FixedClock], caplog: pytest.LogCaptureFixture
) -> None:
    """A row written before subjects were made one line, claimed with a page beside it."""
    fake, clock = twilio
    await store.outbox.enqueue(
        OutboxRow(
            idempotency_key="12:report:email:support",
            incident_number=None,
            channel="email",
            recipient="support@cloudcti.nl",
            kind="report",
            subject="[ctiwatch] P1 incident #12 - ACME\r\nBcc: intruder@example.net",
            body="report",
            created_at=T0,
        )
    )
    await store.outbox.enqueue(sms_row("12:opened:sms:a"))
    async with FakeSmtp(port=0) as smtp, open_channels(settings(fake, smtp.port)) as channels:
        with caplog.at_level(logging.WARNING):
            reports = await OutboxSender(store.outbox, channels, clock).send_due()
        mails = list(smtp.messages)

    assert [(r.idempotency_key, r.outcome) for r in reports] == [
        ("12:report:email:support", "sent"),
        ("12:opened:sms:a", "sent"),
    ]
    assert [(m.subject, m.message["Bcc"]) for m in mails] == [
        ("[ctiwatch] P1 incident #12 - ACME Bcc: intruder@example.net", None)
    ]
    assert caplog.records == []
