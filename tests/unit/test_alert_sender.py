"""The outbox sender: retry with backoff on temporary failures, fall back on permanent ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.channels.base import SendReceipt, TransportError
from alerting.model import OutgoingMessage
from alerting.outbox import MemoryOutbox, OutboxMessage
from alerting.sender import DeliveryReport, OutboxSender, RetryPolicy
from ctiwatch.clock import FixedClock

A, B, C = "+31611111111", "+31622222222", "+31633333333"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class ScriptedChannel:
    """Answers each send with the next scripted outcome: an exception or a provider id."""

    def __init__(self, clock: FixedClock, *script: TransportError | str) -> None:
        self.clock = clock
        self.script = list(script)
        self.sent: list[tuple[datetime, str, str, str]] = []

    async def send(self, message: OutboxMessage) -> SendReceipt:
        self.sent.append((self.clock.now(), message.recipient, message.body, message.kind))
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, TransportError):
            raise outcome
        return SendReceipt(outcome, "queued")


def outgoing(channel: str, to: str, text: str = "alert", **payload: str) -> OutgoingMessage:
    return OutgoingMessage(
        channel=channel,  # type: ignore[arg-type]
        to=to,
        kind="opened",
        subject="",
        text=text,
        idempotency_key=f"12:opened:t:0:{channel}:{to}",
        incident=12,
        at=T0,
        payload=payload,
    )


def transient() -> TransportError:
    return TransportError("Twilio answered HTTP 500", permanent=False)


def permanent() -> TransportError:
    return TransportError("Twilio answered HTTP 400", permanent=True)


async def test_temporary_failures_are_retried_with_backoff_then_sent() -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, transient(), transient(), "SM1")
    outbox = MemoryOutbox()
    ident = outbox.add(outgoing("sms", A))
    sender = OutboxSender(outbox, {"sms": sms}, clock)

    [report] = await sender.send_due()

    assert report.outcome == "sent" and report.provider_id == "SM1"
    # tries at 0 s, +1 s, +2 s more: exponential backoff on the injected clock
    assert [at - T0 for at, *_ in sms.sent] == [timedelta(0), timedelta(seconds=1),
                                               timedelta(seconds=3)]  # fmt: skip
    row = outbox.row(ident)
    assert (row.status, row.provider_id, row.done_at) == ("sent", "SM1", T0 + timedelta(seconds=3))


async def test_still_failing_after_the_tries_goes_back_to_the_outbox_for_later() -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, transient(), transient(), transient())
    outbox = MemoryOutbox()
    ident = outbox.add(outgoing("sms", A))
    sender = OutboxSender(outbox, {"sms": sms}, clock)

    [report] = await sender.send_due()

    assert report.outcome == "retry"
    assert len(sms.sent) == 3
    row = outbox.row(ident)
    assert row.status == "pending"
    assert row.message.attempts == 1
    assert row.not_before == T0 + timedelta(seconds=3) + timedelta(minutes=1)
    assert await sender.send_due() == []  # not due yet
    clock.set(T0 + timedelta(minutes=2))
    [again] = await sender.send_due()
    assert again.outcome == "sent"


async def test_giving_up_after_max_attempts_falls_back() -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, *[transient() for _ in range(2)])
    outbox = MemoryOutbox()
    ident = outbox.add(outgoing("sms", A))
    policy = RetryPolicy(tries_per_claim=1, max_attempts=2)
    sender = OutboxSender(outbox, {"sms": sms}, clock, retry=policy, oncall=lambda now: (A, B))

    [first] = await sender.send_due()
    clock.set(T0 + timedelta(hours=1))
    [second] = await sender.send_due()

    assert (first.outcome, second.outcome) == ("retry", "failed")
    assert outbox.row(ident).status == "failed"
    assert second.fallback is not None and second.fallback.recipient == B
    assert [to for _, to, _, _ in sms.sent] == [A, A, B]


async def test_permanent_voice_failure_falls_back_to_sms_to_the_same_person() -> None:
    clock = FixedClock(T0)
    voice = ScriptedChannel(clock, permanent())
    sms = ScriptedChannel(clock, "SM9")
    outbox = MemoryOutbox()
    ident = outbox.add(outgoing("voice", A, "This is ctiwatch.", sms="CTIWATCH P1 #12 acme"))
    reports: list[DeliveryReport] = []

    async def collect(report: DeliveryReport) -> None:
        reports.append(report)

    sender = OutboxSender(outbox, {"voice": voice, "sms": sms}, clock, on_report=collect)
    await sender.send_due()

    assert len(voice.sent) == 1  # a permanent failure is not retried
    assert sms.sent == [(T0, A, "CTIWATCH P1 #12 acme", "opened")]
    assert outbox.row(ident).status == "failed"
    assert outbox.row(ident).error == "Twilio answered HTTP 400"
    assert [r.describe() for r in reports] == [
        "alert failed: opened voice to +31611111111: Twilio answered HTTP 400; "
        "fell back to sms to +31611111111 (SM9)"
    ]


async def test_permanent_sms_failure_goes_to_the_next_oncall_number() -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, permanent(), "SM2")
    outbox = MemoryOutbox()
    outbox.add(outgoing("sms", B, "CTIWATCH P1 #12"))
    sender = OutboxSender(outbox, {"sms": sms}, clock, oncall=lambda now: (A, B, C))

    [report] = await sender.send_due()

    assert [to for _, to, _, _ in sms.sent] == [B, C]
    assert report.fallback is not None
    assert (report.fallback.recipient, report.fallback.outcome) == (C, "sent")


async def test_failed_email_has_no_fallback() -> None:
    clock = FixedClock(T0)
    email = ScriptedChannel(clock, TransportError("SMTP server answered 550 no", True))
    outbox = MemoryOutbox()
    outbox.add(outgoing("email", "support@cloudcti.nl"))
    sender = OutboxSender(outbox, {"email": email}, clock, oncall=lambda now: (A,))

    [report] = await sender.send_due()

    assert report.describe() == (
        "alert failed: opened email to support@cloudcti.nl: SMTP server answered 550 no; "
        "no fallback"
    )


async def test_a_channel_without_transport_fails_permanently() -> None:
    clock = FixedClock(T0)
    outbox = MemoryOutbox()
    ident = outbox.add(outgoing("voice", A))
    sender = OutboxSender(outbox, {}, clock)
    [report] = await sender.send_due()
    assert report.outcome == "failed"
    assert outbox.row(ident).error == "no transport for channel 'voice'"


async def test_the_same_idempotency_key_is_stored_once() -> None:
    outbox = MemoryOutbox()
    assert outbox.add(outgoing("sms", A)) == outbox.add(outgoing("sms", A))
    assert len(outbox.rows) == 1
