"""SMS and calls through the real twilio client against the project's fake Twilio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from alerting.channels import TransportError, open_channels
from alerting.channels.twilio_voice import build_twiml
from alerting.model import OutgoingMessage
from alerting.outbox import MemoryOutbox, PendingMessage
from alerting.sender import OutboxSender
from ctiwatch.clock import FixedClock, LoopClock, VirtualTimeLoop
from ctiwatch.config import AlertingConfig, TwilioConfig
from ctiwatch.fakes import FakeTwilio

SID = "AC" + "1" * 32
TOKEN = "secret-token"
FROM = "+3197010000001"
HOOKS = "https://ctiwatch.example.net"
A, B = "+31611111111", "+31622222222"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def settings(fake: FakeTwilio, token: str = TOKEN) -> AlertingConfig:
    return AlertingConfig(
        oncall=[A, B],
        twilio=TwilioConfig(
            account_sid=SID,
            auth_token=token,
            from_number=FROM,
            base_url=fake.url,
            webhook_base_url=HOOKS,
        ),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(
        account_sid=SID, auth_token=TOKEN, webhook_base_url=HOOKS, from_number=FROM,
        clock=FixedClock(T0),
    ) as server:  # fmt: skip
        yield server


def message(channel: str, to: str, body: str, incident: int | None = 12) -> PendingMessage:
    return PendingMessage(
        id=1,
        idempotency_key=f"k:{channel}:{to}",
        incident_number=incident,
        channel=channel,
        recipient=to,
        kind="opened",
        subject="",
        body=body,
    )


async def test_sms_goes_through_the_messages_api(fake: FakeTwilio) -> None:
    async with open_channels(settings(fake)) as channels:
        receipt = await channels["sms"].send(message("sms", A, "CTIWATCH P1 #12 acme: down"))
    assert receipt.provider_id == fake.nth_sid("SM", 1)
    assert receipt.status == "queued"
    [sms] = fake.messages
    assert (sms.to, sms.from_, sms.body) == (A, FROM, "CTIWATCH P1 #12 acme: down")
    assert sms.status_callback == "https://ctiwatch.example.net/twilio/status"


async def test_sms_body_is_sent_as_gsm7(fake: FakeTwilio) -> None:
    async with open_channels(settings(fake)) as channels:
        await channels["sms"].send(message("sms", A, "Zoë – ok 📞"))
    assert fake.messages[0].body == "Zoe - ok ?"


async def test_call_carries_the_twiml_that_reads_the_alert_and_gathers_a_key(
    fake: FakeTwilio,
) -> None:
    async with open_channels(settings(fake)) as channels:
        receipt = await channels["voice"].send(message("voice", A, "This is ctiwatch. Alert."))
    [call] = fake.calls
    assert receipt.provider_id == call.sid and call.sid.startswith("CA")
    assert (call.to, call.from_) == (A, FROM)
    assert call.twiml == build_twiml("This is ctiwatch. Alert.", 12, HOOKS)
    assert call.spoken == [
        "This is ctiwatch. Alert.",
        "Press 1 to acknowledge incident 12.",
        "No key was pressed. The alert is repeated by SMS. Goodbye.",
    ]
    assert call.gather_action == "https://ctiwatch.example.net/twilio/voice/gather?incident=12"


async def test_wrong_credentials_are_a_permanent_failure(fake: FakeTwilio) -> None:
    async with open_channels(settings(fake, token="wrong")) as channels:
        with pytest.raises(TransportError) as caught:
            await channels["sms"].send(message("sms", A, "x"))
    assert caught.value.permanent is True
    assert "HTTP 401" in caught.value.message
    assert fake.messages == []


async def test_invalid_number_is_a_permanent_failure(fake: FakeTwilio) -> None:
    async with open_channels(settings(fake)) as channels:
        with pytest.raises(TransportError) as caught:
            await channels["sms"].send(message("sms", "0612", "x"))
    assert caught.value.permanent is True
    assert "The 'To' number 0612 is not a valid phone number." in caught.value.message


async def test_500s_then_success_are_retried_and_sent_once(fake: FakeTwilio) -> None:
    fake.fail_next(2, "500")
    clock = FixedClock(T0)
    outbox = MemoryOutbox()
    ident = outbox.add(OutgoingMessage("sms", A, "opened", "", "CTIWATCH P1 #12", "key-1", 12, T0))
    async with open_channels(settings(fake)) as channels:
        [report] = await OutboxSender(outbox, channels, clock).send_due()
    assert report.outcome == "sent"
    assert fake.requests == 3
    assert [m.body for m in fake.messages] == ["CTIWATCH P1 #12"]
    assert outbox.row(ident).provider_id == fake.messages[0].sid
    assert clock.now() == T0 + timedelta(seconds=3)  # backoff 1 s + 2 s, on the clock


async def test_400_on_a_call_is_permanent_and_falls_back_to_sms(fake: FakeTwilio) -> None:
    fake.fail_next(1, "400")
    outbox = MemoryOutbox()
    ident = outbox.add(
        OutgoingMessage("voice", A, "opened", "", "This is ctiwatch.", "key-2", 12, T0,
                        {"sms": "CTIWATCH P1 #12 acme"})
    )  # fmt: skip
    async with open_channels(settings(fake)) as channels:
        [report] = await OutboxSender(outbox, channels, FixedClock(T0)).send_due()
    assert fake.requests == 2  # the call once (not retried), then the SMS
    assert fake.calls == []
    assert [(m.to, m.body) for m in fake.messages] == [(A, "CTIWATCH P1 #12 acme")]
    assert outbox.row(ident).status == "failed"
    assert "HTTP 400" in outbox.row(ident).error
    assert report.fallback is not None and report.fallback.outcome == "sent"


T = TypeVar("T")


class _VirtualLoop(VirtualTimeLoop):
    # asyncio treats a timer as due when ``when < time() + clock_resolution``; at POSIX
    # magnitudes 1e-9 is below a float's spacing, so a timer landing exactly on the jumped-to
    # time would never fire. A microsecond resolution fixes that (reported to the lead; once
    # ``VirtualTimeLoop`` sets it itself this subclass is a no-op).
    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._clock_resolution = max(float(getattr(self, "_clock_resolution", 0.0)), 1e-6)


def run_virtual(start: datetime, main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=lambda: _VirtualLoop(start)) as runner:
        return runner.run(main)


def test_a_provider_that_does_not_answer_times_out_and_is_retried_in_virtual_time() -> None:
    async def main() -> tuple[str, timedelta, int, int]:
        clock = LoopClock()
        async with FakeTwilio(
            account_sid=SID, auth_token=TOKEN, webhook_base_url=HOOKS, from_number=FROM,
            clock=clock, hang_seconds=300,
        ) as fake:  # fmt: skip
            fake.fail_next(1, "timeout")
            outbox = MemoryOutbox()
            outbox.add(OutgoingMessage("sms", A, "opened", "", "CTIWATCH", "key-3", 12, T0))
            async with open_channels(settings(fake), timeout=10) as channels:
                began = clock.now()
                [report] = await OutboxSender(outbox, channels, clock).send_due()
                elapsed = clock.now() - began
            return report.outcome, elapsed, fake.requests, len(fake.messages)

    outcome, elapsed, requests, delivered = run_virtual(T0, main())
    assert outcome == "sent"
    assert round(elapsed.total_seconds()) == 11  # 10 s timeout, 1 s backoff, then accepted
    assert (requests, delivered) == (2, 1)
