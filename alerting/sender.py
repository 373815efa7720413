"""The outbox sender: claims due rows, sends them, marks them; retries and falls back.

* A row is marked sent only after its transport accepted it. A crash in between sends it again
  after the lease expires (the idempotency key travels with it), never not at all.
* Temporary failures (:class:`TransportError` with ``permanent=False``) are retried at once with
  exponential backoff (tenacity, on the injected clock), waiting at least what the provider asked
  for (``Retry-After`` on a 429); if they keep failing, or the provider asks to wait longer than
  ``max_backoff``, the row goes back to the outbox with a later ``not_before`` (never before the
  asked-for time), until ``max_attempts`` claims have failed.
* Anything else that goes wrong with one message (it cannot be built, a transport fails in a way
  it does not know) is a permanent failure of that message: fallback, marked failed with the
  reason, one log line. It never stops the pass: the messages claimed with it are sent.
* A permanent failure (or running out of attempts) falls back and then marks the row failed:
  a call becomes an SMS to the same person, an SMS goes to the next on-call number. An e-mail
  has no fallback. Every outcome is reported (``on_report``) so it can go on the timeline.

Delivery guarantees
-------------------
The outbox gives at-least-once: a row leaves the outbox only through ``mark_sent`` (after the
transport accepted it) or ``mark_failed`` (after its fallback was tried, so a crash before that
tries the fallback again rather than losing it). Exactly-once is the provider's half of the
work, keyed by the message's idempotency key, which every transport hands over:

* Twilio SMS and calls: the ``Idempotency-Key`` request header
  (:mod:`alerting.channels.twilio_http`). The project's fake Twilio answers a repeated key with
  the first message or call (same SID) and creates nothing, so a resend after a crash, or a
  retry after an answer lost to a timeout, is delivered once. The real Twilio REST API has no
  idempotency keys and ignores the header: against it, a crash in the window between Twilio's
  answer and ``mark_sent`` (or a timeout after Twilio accepted) can send that one SMS or call
  twice. Asking Twilio afterwards is no cure: its lists filter by number and date, not by a
  key of ours, so a resend cannot be told from a second alert to the same person; the sender
  does not pretend to check.
* E-mail: the Message-ID is derived from the key (:func:`alerting.channels.email.message_id`);
  the project's SMTP server records a repeated Message-ID as a duplicate, not a second mail,
  and real mail stores and clients commonly collapse duplicates by Message-ID.
* A fallback message has a key of its own (``<key>/fallback:<channel>:<recipient>``), so
  trying a fallback again after a crash is deduplicated the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
)

from alerting.channels.base import Channel, SendReceipt, TransportError
from alerting.messages import to_gsm7
from alerting.outbox import (
    OutboxMessage,
    OutboxStore,
    PendingMessage,
    WorkerIdentity,
)
from sla.clock import Clock

_logger = logging.getLogger("ctiwatch.alerting.sender")

Outcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    tries_per_claim: int = 3  # immediate tries, with backoff, before the row goes back
    backoff: float = 1.0  # seconds before the 2nd try; doubles each try
    max_backoff: float = 30.0
    max_attempts: int = 5  # failed claims before the row is given up (then: fallback)
    requeue_after: timedelta = timedelta(minutes=1)  # doubles with each failed claim
    max_requeue: timedelta = timedelta(minutes=30)

    def not_before(self, now: datetime, attempts: int) -> datetime:
        delay = min(self.requeue_after * (1 << min(max(attempts, 0), 20)), self.max_requeue)
        return now + delay


@dataclass(frozen=True, slots=True)
class FallbackReport:
    channel: str
    recipient: str
    outcome: Literal["sent", "failed"]
    provider_id: str | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened to one outbox row: for the timeline and the logs."""

    message_id: int | None
    idempotency_key: str
    incident: int | None
    channel: str
    recipient: str
    kind: str
    outcome: Outcome
    at: datetime
    provider_id: str | None = None
    error: str = ""
    fallback: FallbackReport | None = None
    unsendable: bool = False  # failed for a fault of the message itself, not the transport's

    def describe(self) -> str:
        """One line for the incident's timeline."""
        what = f"{self.kind} {self.channel} to {self.recipient}"
        if self.outcome == "sent":
            text = f"alert sent: {what} ({self.provider_id or 'accepted'})"
        elif self.outcome == "retry":
            text = f"alert delayed: {what}: {self.error}; will retry"
        else:
            text = f"alert failed: {what}: {self.error}"
        fb = self.fallback
        if fb is not None:
            if fb.outcome == "sent":
                text += f"; fell back to {fb.channel} to {fb.recipient} ({fb.provider_id})"
            else:
                text += f"; fallback {fb.channel} to {fb.recipient} failed too: {fb.error}"
        elif self.outcome == "failed":
            text += "; no fallback"
        return text


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TransportError) and not exc.permanent


def _retry_after(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.retry_after if isinstance(exc, TransportError) else None


def this_process(node: str | None = None) -> WorkerIdentity:
    """The identity this process start claims outbox rows under: ``node`` (the host name unless
    given), this pid, and a random life."""
    return WorkerIdentity(
        node or socket.gethostname() or "localhost", os.getpid(), uuid.uuid4().hex[:12]
    )


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


class OutboxSender:
    def __init__(
        self,
        store: OutboxStore,
        channels: Mapping[str, Channel],
        clock: Clock,
        *,
        worker: WorkerIdentity | str = "sender",
        lease: timedelta = timedelta(minutes=5),
        batch: int = 20,
        retry: RetryPolicy | None = None,
        oncall: Callable[[datetime], Sequence[str]] | None = None,
        on_report: Callable[[DeliveryReport], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._channels = channels
        self._clock = clock
        self._worker = str(worker)
        self._identity = worker if isinstance(worker, WorkerIdentity) else None
        self._lease = lease
        self._batch = batch
        self._retry = retry or RetryPolicy()
        self._oncall = oncall
        self._on_report = on_report

    async def recover(self, alive: Callable[[int], bool] = process_alive) -> int:
        """At start: the rows an earlier life of this node left claimed (it crashed or was
        killed while sending) are free again, to be sent now rather than when their leases run
        out. Only a sender with a :class:`WorkerIdentity` knows its earlier lives. Returns how
        many rows were freed."""
        me = self._identity
        if me is None:
            return 0
        earlier = [w for w in await self._store.claimants() if me.left_by_earlier_life(w, alive)]
        if not earlier:
            return 0
        freed = await self._store.release(earlier)
        _logger.warning(
            "%d alert(s) left claimed by an earlier life of %s (%s) are sent again",
            freed,
            me.node,
            ", ".join(earlier),
        )
        return freed

    async def send_due(self) -> list[DeliveryReport]:
        """One pass: claim what is due, send it, mark it. Returns what happened."""
        claimed = await self._store.claim(self._worker, self._clock.now(), self._lease, self._batch)
        reports = []
        for message in claimed:
            try:
                report = await self._send_one(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The outcome could not be stored (the database refused it): the row keeps its
                # lease and is claimed again when it runs out; the others go on being sent.
                _logger.error(
                    "alert %s: outcome not stored: %s", message.idempotency_key, _describe(exc)
                )
                continue
            reports.append(report)
            if self._on_report is not None:
                try:
                    await self._on_report(report)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    _logger.error(
                        "alert %s: report not handled: %s", report.idempotency_key, _describe(exc)
                    )
        return reports

    async def run(self, interval: float = 2.0) -> None:
        """Recover, then send forever (until cancelled), polling every ``interval`` seconds
        when idle."""
        await self.recover()
        while True:
            reports = await self.send_due()
            if len(reports) < self._batch:
                await self._clock.sleep(interval)

    async def deliver(self, message: OutboxMessage) -> SendReceipt:
        """Send through the message's channel, retrying temporary failures with backoff."""
        channel = self._channels.get(message.channel)
        if channel is None:
            raise TransportError(f"no transport for channel {message.channel!r}", True)
        policy = self._retry
        backoff = wait_exponential(multiplier=policy.backoff, max=policy.max_backoff)

        def wait(state: RetryCallState) -> float:
            # The provider's Retry-After, if it asked for longer than the backoff.
            return max(backoff(state), _retry_after(state) or 0.0)

        def stop(state: RetryCallState) -> bool:
            # Asked to wait longer than a claim waits: back to the outbox with a later
            # not_before instead.
            asked = _retry_after(state) or 0.0
            return state.attempt_number >= policy.tries_per_claim or asked > policy.max_backoff

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(_transient),
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await channel.send(message)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _send_one(self, message: OutboxMessage) -> DeliveryReport:
        def report(outcome: Outcome, **extra: object) -> DeliveryReport:
            return DeliveryReport(
                message_id=message.id,
                idempotency_key=message.idempotency_key,
                incident=message.incident_number,
                channel=message.channel,
                recipient=message.recipient,
                kind=message.kind,
                outcome=outcome,
                at=self._clock.now(),
                **extra,  # type: ignore[arg-type]
            )

        try:
            receipt = await self.deliver(message)
        except asyncio.CancelledError:
            raise
        except TransportError as exc:
            attempts = message.attempts + 1
            if not exc.permanent and attempts < self._retry.max_attempts:
                not_before = self._retry.not_before(self._clock.now(), message.attempts)
                if exc.retry_after is not None:
                    not_before = max(
                        not_before, self._clock.now() + timedelta(seconds=exc.retry_after)
                    )
                await self._store.mark_retry(_row_id(message), exc.message, not_before)
                _logger.warning("alert %s delayed: %s", message.idempotency_key, exc.message)
                return report("retry", error=exc.message)
            _logger.error("alert %s failed: %s", message.idempotency_key, exc.message)
            # Fallback first: a crash before mark_failed tries it again (under its own key)
            # instead of leaving a failed row whose fallback was never sent.
            fallback = await self._fall_back(message)
            await self._store.mark_failed(_row_id(message), exc.message, self._clock.now())
            return report("failed", error=exc.message, fallback=fallback)
        except Exception as exc:
            # Not the transport's word but a fault of this message (it cannot be built or
            # sent: a header with a line break, a payload of the wrong shape, ...). Trying it
            # again cannot help: it fails for good, alone, and the pass goes on.
            error = f"cannot send: {_describe(exc)}"
            _logger.error("alert %s failed: %s", message.idempotency_key, error)
            fallback = await self._fall_back(message)
            await self._store.mark_failed(_row_id(message), error, self._clock.now())
            return report("failed", error=error, fallback=fallback, unsendable=True)
        await self._store.mark_sent(_row_id(message), receipt.provider_id, self._clock.now())
        return report("sent", provider_id=receipt.provider_id)

    def fallback_for(self, message: OutboxMessage) -> PendingMessage | None:
        """The message to send instead of one that failed for good, if there is one."""
        key = message.idempotency_key
        if message.channel == "voice":
            text = message.payload.get("sms") or message.body
            return PendingMessage(
                id=message.id,
                idempotency_key=f"{key}/fallback:sms:{message.recipient}",
                incident_number=message.incident_number,
                channel="sms",
                recipient=message.recipient,
                kind=message.kind,
                subject=message.subject,
                body=to_gsm7(str(text)),
            )
        if message.channel == "sms" and self._oncall is not None:
            numbers = list(self._oncall(self._clock.now()))
            nxt = _next_number(numbers, message.recipient)
            if nxt is None:
                return None
            return PendingMessage(
                id=message.id,
                idempotency_key=f"{key}/fallback:sms:{nxt}",
                incident_number=message.incident_number,
                channel="sms",
                recipient=nxt,
                kind=message.kind,
                subject=message.subject,
                body=message.body,
            )
        return None

    async def _fall_back(self, message: OutboxMessage) -> FallbackReport | None:
        fallback = self.fallback_for(message)
        if fallback is None:
            return None
        try:
            receipt = await self.deliver(fallback)
        except asyncio.CancelledError:
            raise
        except TransportError as exc:
            return FallbackReport(fallback.channel, fallback.recipient, "failed", error=exc.message)
        except Exception as exc:
            error = f"cannot send: {_describe(exc)}"
            return FallbackReport(fallback.channel, fallback.recipient, "failed", error=error)
        return FallbackReport(fallback.channel, fallback.recipient, "sent", receipt.provider_id)


def _next_number(numbers: Sequence[str], after: str) -> str | None:
    """The on-call number after ``after`` (wrapping round), never ``after`` itself."""
    others = [n for n in numbers if n != after]
    if not others:
        return None
    if after in numbers:
        index = list(numbers).index(after)
        for candidate in [*numbers[index + 1 :], *numbers[:index]]:
            if candidate != after:
                return candidate
    return others[0]


def _describe(exc: BaseException, limit: int = 300) -> str:
    """``ValueError: ...`` on one line, bounded: for the log, the row and the timeline."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row_id(message: OutboxMessage) -> int:
    if message.id is None:
        raise ValueError(f"outbox message {message.idempotency_key!r} has no id: not claimed")
    return message.id
