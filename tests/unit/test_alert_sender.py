"""The outbox sender: retry with backoff on temporary failures, fall back on permanent ones."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from alerting.channels.base import SendReceipt, TransportError
from alerting.model import OutgoingMessage
from alerting.outbox import MemoryOutbox, OutboxMessage, WorkerIdentity
from alerting.sender import DeliveryReport, OutboxSender, RetryPolicy
from ctiwatch.clock import FixedClock

A, B, C = "+31611111111", "+31622222222", "+31633333333"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class ScriptedChannel:
    """Answers each send with the next scripted outcome: an exception or a provider id."""

    def __init__(self, clock: FixedClock, *script: Exception | str) -> None:
        self.clock = clock
        self.script = list(script)
        self.sent: list[tuple[datetime, str, str, str]] = []

    async def send(self, message: OutboxMessage) -> SendReceipt:
        self.sent.append((self.clock.now(), message.recipient, message.body, message.kind))
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, Exception):
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


# --- each message judged alone -------------------------------------------------------------------


def keyed(channel: str, to: str, key: str) -> OutgoingMessage:
    return OutgoingMessage(channel, to, "opened", "", "alert", key, 12, T0)  # type: ignore[arg-type]


async def test_a_message_that_cannot_be_built_fails_alone_and_the_pages_claimed_with_it_are_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FixedClock(T0)
    bad = ValueError("Header values may not contain linefeed or carriage return characters")
    email = ScriptedChannel(clock, bad)
    sms = ScriptedChannel(clock, "SM1")
    voice = ScriptedChannel(clock, "CA1")
    outbox = MemoryOutbox()
    mail = outbox.add(keyed("email", "support@cloudcti.nl", "12:opened:email"))
    page = outbox.add(keyed("sms", A, "12:opened:sms"))
    call = outbox.add(keyed("voice", A, "12:opened:voice"))
    sender = OutboxSender(outbox, {"email": email, "sms": sms, "voice": voice}, clock)

    with caplog.at_level(logging.ERROR, logger="ctiwatch.alerting.sender"):
        reports = await sender.send_due()

    error = (
        "cannot send: ValueError: Header values may not contain linefeed or carriage return "
        "characters"
    )
    assert [(r.idempotency_key, r.outcome, r.unsendable) for r in reports] == [
        ("12:opened:email", "failed", True),
        ("12:opened:sms", "sent", False),
        ("12:opened:voice", "sent", False),
    ]
    assert len(email.sent) == 1  # not retried: trying the same message again cannot help
    assert [(outbox.row(i).status, outbox.row(i).error) for i in (mail, page, call)] == [
        ("failed", error),
        ("sent", ""),
        ("sent", ""),
    ]
    assert reports[0].describe() == (
        f"alert failed: opened email to support@cloudcti.nl: {error}; no fallback"
    )
    assert [r.getMessage() for r in caplog.records] == [f"alert 12:opened:email failed: {error}"]
    assert await sender.send_due() == []  # nothing left claimed or re-claimed


async def test_a_call_that_fails_unexpectedly_falls_back_to_an_sms_to_the_same_person() -> None:
    clock = FixedClock(T0)
    voice = ScriptedChannel(clock, KeyError("twiml"))
    sms = ScriptedChannel(clock, "SM7")
    outbox = MemoryOutbox()
    ident = outbox.add(outgoing("voice", A, "This is ctiwatch.", sms="CTIWATCH P1 #12 acme"))
    sender = OutboxSender(outbox, {"voice": voice, "sms": sms}, clock)

    [report] = await sender.send_due()

    assert sms.sent == [(T0, A, "CTIWATCH P1 #12 acme", "opened")]
    assert outbox.row(ident).status == "failed"
    assert report.describe() == (
        "alert failed: opened voice to +31611111111: cannot send: KeyError: 'twiml'; "
        "fell back to sms to +31611111111 (SM7)"
    )


class RefusingOutbox(MemoryOutbox):
    """The outbox whose database refuses to store the outcome of one message."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse

    async def mark_sent(self, id: int, provider_id: str | None, now: datetime) -> None:
        if self.row(id).message.idempotency_key == self.refuse:
            raise RuntimeError("database refused the update")
        await super().mark_sent(id, provider_id, now)


async def test_an_outcome_the_store_refuses_keeps_that_row_leased_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, "SM1", "SM2")
    outbox = RefusingOutbox(refuse="12:opened:sms:a")
    first = outbox.add(keyed("sms", A, "12:opened:sms:a"))
    second = outbox.add(keyed("sms", B, "12:opened:sms:b"))
    lease = timedelta(minutes=5)
    sender = OutboxSender(outbox, {"sms": sms}, clock, lease=lease)

    with caplog.at_level(logging.ERROR, logger="ctiwatch.alerting.sender"):
        reports = await sender.send_due()

    assert [(r.idempotency_key, r.outcome) for r in reports] == [("12:opened:sms:b", "sent")]
    assert (outbox.row(first).status, outbox.row(first).lease_until) == ("pending", T0 + lease)
    assert outbox.row(second).status == "sent"
    assert [r.getMessage() for r in caplog.records] == [
        "alert 12:opened:sms:a: outcome not stored: RuntimeError: database refused the update"
    ]


async def test_a_failing_report_handler_does_not_stop_the_pass() -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, "SM1", "SM2")
    outbox = MemoryOutbox()
    outbox.add(keyed("sms", A, "12:opened:sms:a"))
    outbox.add(keyed("sms", B, "12:opened:sms:b"))

    async def broken(report: DeliveryReport) -> None:
        raise RuntimeError("timeline not stored")

    sender = OutboxSender(outbox, {"sms": sms}, clock, on_report=broken)
    reports = await sender.send_due()

    assert [(r.idempotency_key, r.outcome) for r in reports] == [
        ("12:opened:sms:a", "sent"),
        ("12:opened:sms:b", "sent"),
    ]


# --- a restart reclaims what its earlier life left claimed ------------------------------------


def test_a_worker_identity_is_node_pid_and_life_and_reads_back() -> None:
    me = WorkerIdentity("ctiwatch-1", 4242, "0a1b2c3d4e5f")
    assert str(me) == "ctiwatch-1/4242/0a1b2c3d4e5f"
    assert WorkerIdentity.parse(str(me)) == me
    assert WorkerIdentity.parse("node/with/slash/7/abc") == WorkerIdentity("node/with/slash", 7,
                                                                            "abc")  # fmt: skip
    assert [WorkerIdentity.parse(t) for t in ("ctiwatch-sender", "a/b/c", "/1/x")] == [None] * 3


@pytest.mark.parametrize(
    ("claimant", "running", "earlier"),
    [
        pytest.param("ctiwatch-1/4000/dead00000000", set(), True, id="same-node-process-gone"),
        pytest.param("ctiwatch-1/4000/live00000000", {4000}, False, id="same-node-still-running"),
        pytest.param("ctiwatch-1/4242/older0000000", {4242}, True, id="same-pid-earlier-start"),
        pytest.param("ctiwatch-1/4242/0a1b2c3d4e5f", {4242}, False, id="this-life"),
        pytest.param("ctiwatch-2/4000/dead00000000", set(), False, id="another-node"),
        pytest.param("ctiwatch-sender", set(), False, id="an-old-style-name"),
    ],
)
def test_a_claim_is_left_by_an_earlier_life_only_on_the_same_node_and_no_longer_running(
    claimant: str, running: set[int], earlier: bool
) -> None:
    me = WorkerIdentity("ctiwatch-1", 4242, "0a1b2c3d4e5f")
    assert me.left_by_earlier_life(claimant, alive=lambda pid: pid in running) is earlier


async def test_at_start_the_rows_an_earlier_life_left_claimed_are_sent_at_once() -> None:
    clock = FixedClock(T0)
    sms = ScriptedChannel(clock, "SM1", "SM2", "SM3")
    outbox = MemoryOutbox()
    for key in ("12:opened:sms:a", "12:opened:sms:b", "12:opened:sms:c"):
        outbox.add(keyed("sms", A, key))
    lease = timedelta(minutes=5)
    await outbox.claim("node-1/100/crashed00000", T0, lease, 2)  # the earlier life's, then killed
    await outbox.claim("node-2/200/elsewhere000", T0, lease, 1)  # another node's, left alone
    me = WorkerIdentity("node-1", 300, "restarted000")
    sender = OutboxSender(outbox, {"sms": sms}, clock, worker=me, lease=lease)

    assert await sender.recover(alive=lambda pid: False) == 2
    reports = await sender.send_due()

    assert [(r.idempotency_key, r.outcome, r.at) for r in reports] == [
        ("12:opened:sms:a", "sent", T0),
        ("12:opened:sms:b", "sent", T0),
    ]
    assert await outbox.claimants() == ["node-2/200/elsewhere000"]
    assert await sender.recover(alive=lambda pid: False) == 0


async def test_a_sender_named_by_a_plain_string_has_no_earlier_life_to_recover() -> None:
    outbox = MemoryOutbox()
    outbox.add(keyed("sms", A, "12:opened:sms:a"))
    await outbox.claim("sender", T0, timedelta(minutes=5), 1)
    sender = OutboxSender(outbox, {}, FixedClock(T0), worker="sender")
    assert await sender.recover(alive=lambda pid: False) == 0
