"""Exactly once per idempotency key: a sender killed between the provider's acceptance and
``mark_sent`` is restarted, sends again at once (its earlier life's claims freed, the lease not
waited out), and the fakes deliver every message once.

The sender runs as a real process (``outbox_worker.py``) over a store on disk, sending through
the real twilio client and aiosmtplib to the fake Twilio and SMTP servers running here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.channels import Channel, SendReceipt, open_channels
from alerting.channels.email import message_id
from alerting.model import OutgoingMessage
from alerting.outbox import MemoryOutbox, OutboxMessage
from alerting.sender import OutboxSender, RetryPolicy
from ctiwatch.clock import FixedClock, LoopClock, run_in_virtual_time
from ctiwatch.config import AlertingConfig, TwilioConfig
from ctiwatch.fakes import FakeSmtp, FakeTwilio
from ctiwatch.storage import OutboxMessage as OutboxRow
from ctiwatch.storage import Store

HERE = Path(__file__).resolve().parent
WORKER = HERE / "outbox_worker.py"
ROOT = HERE.parent.parent
SID = "AC" + "2" * 32
TOKEN = "crash-token"
FROM = "+3197010000002"
HOOKS = "https://ctiwatch.example.net"
A, B = "+31611111111", "+31622222222"
LEASE = 3600.0  # seconds: a restart that waited it out would fail the test's timeout
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

# (idempotency key, channel, recipient), in the order the sender takes them.
ROWS = [
    ("7:opened:email:support", "email", "support@cloudcti.nl"),
    ("7:opened:sms:" + A, "sms", A),
    ("7:opened:voice:" + A, "voice", A),
    ("7:opened:sms:" + B, "sms", B),
    ("7:breach_warning:email:support", "email", "support@cloudcti.nl"),
    ("7:opened:voice:" + B, "voice", B),
]
KEYS = [key for key, _, _ in ROWS]


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    lines: list[dict[str, Any]]
    stderr: str


async def enqueue_rows(storage_url: str) -> None:
    created = datetime.now(UTC) - timedelta(minutes=10)
    async with Store.open(storage_url) as store:
        for index, (key, channel, to) in enumerate(ROWS):
            await store.outbox.enqueue(
                OutboxRow(
                    idempotency_key=key,
                    channel=channel,  # type: ignore[arg-type]
                    recipient=to,
                    kind="opened",
                    subject=f"[ctiwatch] incident #7 ({key})",
                    body=f"CTIWATCH P1 #7 acme: click2dial down ({index})",
                    created_at=created + timedelta(seconds=index),
                )
            )


async def stored_rows(storage_url: str) -> dict[str, OutboxRow]:
    async with Store.open(storage_url, migrate=False) as store:
        return {row.idempotency_key: row for row in await store.outbox.list()}


async def start_worker(
    storage_url: str, twilio: FakeTwilio, smtp: FakeSmtp, *options: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "--storage", storage_url,
        "--twilio-url", twilio.url,
        "--account-sid", SID,
        "--auth-token", TOKEN,
        "--from-number", FROM,
        "--smtp-port", str(smtp.port),
        "--lease", str(LEASE),
        *options,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def run_worker(
    storage_url: str, twilio: FakeTwilio, smtp: FakeSmtp, *options: str
) -> Finished:
    process = await start_worker(storage_url, twilio, smtp, *options)
    try:
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode is not None
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return Finished(process.returncode, lines, err.decode())


async def wait_for_acceptance(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """The worker's ``{"accepted": key}`` line: the provider took a message not marked sent."""
    assert process.stdout is not None and process.stderr is not None
    async with asyncio.timeout(60):
        while line := await process.stdout.readline():
            data: dict[str, Any] = json.loads(line)
            if "accepted" in data:
                return data
        stderr = (await process.stderr.read()).decode()
    raise AssertionError(f"the worker ended without stalling:\n{stderr}")


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTwilio, FakeSmtp]]:
    async with (
        FakeTwilio(
            account_sid=SID, auth_token=TOKEN, webhook_base_url=HOOKS, from_number=FROM
        ) as t,
        FakeSmtp(port=0) as smtp,
    ):
        yield t, smtp


def delivered_keys(twilio: FakeTwilio, smtp: FakeSmtp) -> Counter[str]:
    """How often each idempotency key was delivered, over every channel of the fakes."""
    by_message_id = {message_id(key): key for key in KEYS}
    return Counter(
        [str(m.idempotency_key) for m in twilio.messages]
        + [str(c.idempotency_key) for c in twilio.calls]
        + [by_message_id.get(mail.message_id, mail.message_id) for mail in smtp.messages]
    )


@pytest.mark.parametrize(
    ("backend", "stall_on"),
    [
        pytest.param("sqlite", "email", id="sqlite-email"),
        pytest.param("sqlite", "sms", id="sqlite-sms"),
        pytest.param("sqlite", "voice", id="sqlite-voice"),
        pytest.param("postgres", "voice", id="postgres-voice", marks=pytest.mark.postgres),
    ],
)
async def test_sender_killed_after_the_provider_accepted_delivers_each_key_once_after_restart(
    storage_url: str, stall_on: str, fakes: tuple[FakeTwilio, FakeSmtp]
) -> None:
    twilio, smtp = fakes
    await enqueue_rows(storage_url)

    crashed = await start_worker(storage_url, twilio, smtp, "--node", "node-a",
                                 "--stall-on", stall_on)  # fmt: skip
    try:
        accepted = await wait_for_acceptance(crashed)
    finally:
        with contextlib.suppress(ProcessLookupError):
            crashed.send_signal(signal.SIGKILL)
        await crashed.wait()
    assert crashed.returncode == -signal.SIGKILL

    stalled = accepted["accepted"]
    assert stalled == next(key for key, channel, _ in ROWS if channel == stall_on)
    before = KEYS[: KEYS.index(stalled)]
    after_crash = await stored_rows(storage_url)
    assert {k: r.status for k, r in after_crash.items()} == {
        k: "sent" if k in before else "claimed" for k in KEYS
    }
    [dead] = {r.claimed_by for r in after_crash.values()}
    assert dead is not None and dead.startswith(f"node-a/{crashed.pid}/")
    assert delivered_keys(twilio, smtp) == Counter([*before, stalled])

    # A worker of another node, while the dead one's lease runs: nothing is claimable.
    other = await run_worker(storage_url, twilio, smtp, "--node", "node-b")
    assert (other.returncode, other.lines) == (0, [{"recovered": 0}]), other.stderr

    # The same node restarted: what its earlier life left claimed is sent at once, without
    # waiting out the lease (an hour here).
    started = time.monotonic()
    restarted = await run_worker(storage_url, twilio, smtp, "--node", "node-a")
    took = time.monotonic() - started
    assert restarted.returncode == 0, restarted.stderr
    assert took < 30.0 < LEASE
    remaining = [key for key in KEYS if key not in before]
    assert restarted.lines[0] == {"recovered": len(remaining)}
    assert [(line["key"], line["outcome"]) for line in restarted.lines[1:]] == [
        (key, "sent") for key in remaining
    ]

    final = await stored_rows(storage_url)
    assert {k: r.status for k, r in final.items()} == {k: "sent" for k in KEYS}
    assert {k: r.attempts for k, r in final.items()} == {k: 0 for k in KEYS}
    # The resend got the provider's first answer: the same SID / Message-ID as the accepted one.
    assert final[stalled].provider_id == accepted["provider_id"]
    # Every idempotency key delivered exactly once; the one resend was recognised as such.
    assert delivered_keys(twilio, smtp) == Counter(KEYS)
    if stall_on == "email":
        assert ([m.message_id for m in smtp.duplicates], twilio.duplicates) == (
            [message_id(stalled)],
            [],
        )
    else:
        assert (smtp.duplicates, twilio.duplicates) == ([], [stalled])
    assert [(m.to, m.idempotency_key) for m in twilio.messages] == [
        (to, key) for key, channel, to in ROWS if channel == "sms"
    ]
    assert [(c.to, c.idempotency_key) for c in twilio.calls] == [
        (to, key) for key, channel, to in ROWS if channel == "voice"
    ]


async def test_a_second_sender_on_the_same_node_leaves_a_running_senders_claims_alone(
    tmp_path: Path, fakes: tuple[FakeTwilio, FakeSmtp]
) -> None:
    storage_url = f"sqlite+aiosqlite:///{tmp_path / 'ctiwatch.db'}"
    twilio, smtp = fakes
    await enqueue_rows(storage_url)
    running = await start_worker(storage_url, twilio, smtp, "--node", "node-a",
                                 "--stall-on", "email")  # fmt: skip
    try:
        accepted = await wait_for_acceptance(running)
        second = await run_worker(storage_url, twilio, smtp, "--node", "node-a")
    finally:
        with contextlib.suppress(ProcessLookupError):
            running.send_signal(signal.SIGKILL)
        await running.wait()

    # Its process still runs: the claims are its, not an earlier life's.
    assert (second.returncode, second.lines) == (0, [{"recovered": 0}]), second.stderr
    assert accepted["accepted"] == KEYS[0]
    assert delivered_keys(twilio, smtp) == Counter([KEYS[0]])


# --- in one process: lost answers, persistent failures, a crash during the fallback ------------


def settings(fake: FakeTwilio) -> AlertingConfig:
    return AlertingConfig(
        oncall=[A, B],
        twilio=TwilioConfig(
            account_sid=SID, auth_token=TOKEN, from_number=FROM, base_url=fake.url,
            webhook_base_url=HOOKS,
        ),
    )  # fmt: skip


def sms(to: str, key: str, text: str = "CTIWATCH P1 #7 acme") -> OutgoingMessage:
    return OutgoingMessage("sms", to, "opened", "", text, key, 7, T0)


def test_an_answer_lost_to_a_timeout_is_retried_under_the_same_key_and_sent_once() -> None:
    async def main() -> tuple[str, str | None, list[str], list[tuple[str, str | None]], str]:
        clock = LoopClock()
        async with FakeTwilio(
            account_sid=SID, auth_token=TOKEN, webhook_base_url=HOOKS, from_number=FROM,
            clock=clock, hang_seconds=300,
        ) as fake:  # fmt: skip
            fake.fail_next(1, "lost")  # Twilio creates the message, its answer never arrives
            outbox = MemoryOutbox()
            outbox.add(sms(A, "7:opened:sms:lost"))
            async with open_channels(settings(fake), timeout=10) as channels:
                [report] = await OutboxSender(outbox, channels, clock).send_due()
            messages = [(m.sid, m.idempotency_key) for m in fake.messages]
            assert fake.requests == 2  # the lost one, then the retry after 10 s + 1 s backoff
            return (
                report.outcome,
                report.provider_id,
                fake.duplicates,
                messages,
                fake.nth_sid("SM", 1),
            )

    outcome, provider_id, duplicates, messages, first_sid = run_in_virtual_time(T0, main)
    assert outcome == "sent"
    assert messages == [(first_sid, "7:opened:sms:lost")]
    assert duplicates == ["7:opened:sms:lost"]
    assert provider_id == first_sid


async def test_500s_on_every_claim_end_in_the_fallback_to_the_next_oncall_number(
    fakes: tuple[FakeTwilio, FakeSmtp],
) -> None:
    twilio, _ = fakes
    twilio.fail_next(6, "500")
    clock = FixedClock(T0)
    outbox = MemoryOutbox()
    ident = outbox.add(sms(A, "7:opened:sms:a"))
    policy = RetryPolicy(tries_per_claim=3, max_attempts=2)
    async with open_channels(settings(twilio)) as channels:
        sender = OutboxSender(outbox, channels, clock, retry=policy, oncall=lambda now: (A, B))
        [first] = await sender.send_due()
        assert await sender.send_due() == []  # not due again before its not_before
        clock.set(T0 + timedelta(hours=1))
        [second] = await sender.send_due()

    assert (first.outcome, second.outcome) == ("retry", "failed")
    assert twilio.requests == 7  # 3 tries per claim, 2 claims, then the fallback
    assert [(m.to, m.body, m.idempotency_key) for m in twilio.messages] == [
        (B, "CTIWATCH P1 #7 acme", f"7:opened:sms:a/fallback:sms:{B}")
    ]
    row = outbox.row(ident)
    assert (row.status, row.message.attempts) == ("failed", 1)
    assert second.describe() == (
        "alert failed: opened sms to +31611111111: SMS to +31611111111: Twilio answered "
        "HTTP 500: Unable to create record: Internal Server Error (injected); "
        f"fell back to sms to +31622222222 ({twilio.messages[0].sid})"
    )


class HangAfterAccept:
    """The crash stand-in: the message is accepted, then the sender never gets further."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.accepted = asyncio.Event()

    async def send(self, message: OutboxMessage) -> SendReceipt:
        await self.inner.send(message)
        self.accepted.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_fallback_interrupted_before_the_row_is_marked_failed_is_sent_once_on_restart(
    fakes: tuple[FakeTwilio, FakeSmtp],
) -> None:
    twilio, _ = fakes
    twilio.fail_next(1, "400")  # the call is refused
    clock = FixedClock(T0)
    outbox = MemoryOutbox()
    ident = outbox.add(
        OutgoingMessage("voice", A, "opened", "", "This is ctiwatch.", "7:opened:voice:a", 7, T0,
                        {"sms": "CTIWATCH P1 #7 acme"})
    )  # fmt: skip
    lease = timedelta(minutes=5)
    async with open_channels(settings(twilio)) as channels:
        hanging = HangAfterAccept(channels["sms"])
        first = OutboxSender(outbox, {**channels, "sms": hanging}, clock, lease=lease)
        task = asyncio.create_task(first.send_due())
        async with asyncio.timeout(30):
            await hanging.accepted.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert outbox.row(ident).status == "pending"  # not marked failed: the process "died"

        clock.set(T0 + lease)
        twilio.fail_next(1, "400")  # and refused again after the restart
        [report] = await OutboxSender(outbox, channels, clock, lease=lease).send_due()

    assert report.outcome == "failed"
    assert report.fallback is not None and report.fallback.outcome == "sent"
    key = f"7:opened:voice:a/fallback:sms:{A}"
    assert [(m.to, m.body, m.idempotency_key) for m in twilio.messages] == [
        (A, "CTIWATCH P1 #7 acme", key)
    ]
    assert twilio.duplicates == [key]
    assert twilio.calls == []
    assert outbox.row(ident).status == "failed"
