"""The outbox: messages written in the same transaction as the state change that caused them,
sent later by a worker that claims them.

Claiming is one ``UPDATE .. WHERE id IN (SELECT .. LIMIT n [FOR UPDATE SKIP LOCKED])
RETURNING *``: on PostgreSQL concurrent claimers skip each other's locked rows instead of
waiting; on SQLite the write transaction (``BEGIN IMMEDIATE``) already excludes other writers.
A claim is a lease: if the worker dies before ``mark_sent``, the row becomes claimable again
when ``lease_until`` passes and is sent again. That resend carries the same idempotency key,
which is what keeps it from being a duplicate at the provider.

``attempts`` counts failed attempts (``mark_retry`` / ``mark_failed``), which is what the
sender's retry policy (``alerting.sender``) reads; a claim alone does not count.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.engine import Database
from ctiwatch.storage.records import (
    CHANNELS,
    OUTBOX_STATUSES,
    Channel,
    OutboxMessage,
    OutboxStatus,
)
from ctiwatch.storage.tables import OUTBOX


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"outbox {name} must be timezone-aware UTC")
    return value


ERROR_LIMIT = 2000


def _error_text(error: str) -> str:
    """An error as stored: no NUL (PostgreSQL refuses it in text), bounded. A transport's or an
    exception's words must never be what keeps the outcome of a send from being stored."""
    text = error.replace("\x00", "\ufffd")
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def _outbox_values(message: OutboxMessage) -> dict[str, Any]:
    key = message.idempotency_key
    if not key:
        raise ValueError("outbox message: idempotency_key must not be empty")
    if message.channel not in CHANNELS:
        raise ValueError(f"outbox message {key!r}: channel {message.channel!r} is not one of "
                         f"{', '.join(CHANNELS)}")  # fmt: skip
    if message.status not in OUTBOX_STATUSES:
        raise ValueError(f"outbox message {key!r}: status {message.status!r} is unknown")
    created_at = _aware("created_at", message.created_at)
    return {
        "idempotency_key": key,
        "incident_number": message.incident_number,
        "channel": message.channel,
        "recipient": message.recipient,
        "kind": message.kind,
        "subject": message.subject,
        "body": message.body,
        "payload": dict(message.payload),
        "created_at": created_at,
        "not_before": _aware("not_before", message.not_before or created_at),
        "status": message.status,
        "claimed_by": message.claimed_by,
        "lease_until": message.lease_until,
        "attempts": message.attempts,
        "provider_id": message.provider_id,
        "last_error": message.last_error,
        "sent_at": message.sent_at,
        "failed_at": message.failed_at,
    }


def _outbox_from(row: Row[Any]) -> OutboxMessage:
    channel: Channel = row.channel
    status: OutboxStatus = row.status
    return OutboxMessage(
        id=int(row.id),
        idempotency_key=row.idempotency_key,
        incident_number=row.incident_number,
        channel=channel,
        recipient=row.recipient,
        kind=row.kind,
        subject=row.subject,
        body=row.body,
        payload=dict(row.payload or {}),
        created_at=row.created_at,
        not_before=row.not_before,
        status=status,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        attempts=int(row.attempts),
        provider_id=row.provider_id,
        last_error=row.last_error,
        sent_at=row.sent_at,
        failed_at=row.failed_at,
    )


def delivered_before(cutoff: datetime) -> ColumnElement[bool]:
    """Messages that are done with and older than ``cutoff``: sent ones by ``sent_at``, failed
    ones by ``failed_at``. ``created_at`` stands in for a missing time. Pending and claimed
    messages never match, however old: they are still to be sent."""
    cutoff = _aware("cutoff", cutoff)
    o = OUTBOX.c
    return or_(
        and_(o.status == "sent", func.coalesce(o.sent_at, o.created_at) < cutoff),
        and_(o.status == "failed", func.coalesce(o.failed_at, o.created_at) < cutoff),
    )


async def _enqueue(db: Database, conn: AsyncConnection, message: OutboxMessage) -> bool:
    insert = (
        db.insert(OUTBOX)
        .values(_outbox_values(message))
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OUTBOX.c.id)
    )
    return (await conn.execute(insert)).first() is not None


async def _claim(
    conn: AsyncConnection, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[OutboxMessage]:
    now = _aware("now", now)
    o = OUTBOX.c
    claimable = or_(
        and_(o.status == "pending", o.not_before <= now),
        and_(o.status == "claimed", o.lease_until <= now),
    )
    chosen = (
        select(o.id)
        .where(claimable)
        .order_by(o.not_before, o.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # rendered on PostgreSQL only
    )
    claim = (
        update(OUTBOX)
        .where(o.id.in_(chosen))
        .values(
            status="claimed",
            claimed_by=worker,
            lease_until=now + lease,
        )
        .returning(OUTBOX)
    )
    claimed = [_outbox_from(row) for row in await conn.execute(claim)]
    # RETURNING has no defined order.
    return sorted(claimed, key=lambda m: (m.not_before or m.created_at, m.id or 0))


class TxOutbox:
    """``tx.outbox`` inside a unit of work."""

    def __init__(self, db: Database, conn: AsyncConnection) -> None:
        self._db = db
        self._conn = conn

    async def enqueue(self, message: OutboxMessage) -> bool:
        """Add a message; a message whose idempotency key is already stored is ignored
        (returns ``False``)."""
        return await _enqueue(self._db, self._conn, message)

    async def claim(
        self, worker: str, now: datetime, lease: timedelta, limit: int = 10
    ) -> list[OutboxMessage]:
        return await _claim(self._conn, worker, now, lease, limit)

    async def drop_pending(self, key_prefix: str) -> int:
        """Delete the messages not sent yet and nobody holds whose idempotency key starts
        with ``key_prefix`` (notices a change made obsolete); returns how many. Sent, claimed
        and failed messages stay."""
        if not key_prefix:
            raise ValueError("drop_pending: key_prefix must not be empty")
        pattern = key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = OUTBOX.delete().where(
            OUTBOX.c.status == "pending",
            OUTBOX.c.idempotency_key.like(pattern + "%", escape="\\"),
        )
        result = await self._conn.execute(query)
        return int(result.rowcount or 0)


class OutboxRepository:
    """``store.outbox``: the sender's side (and lookups for the console and webhooks)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, message: OutboxMessage) -> bool:
        """A message that belongs to no state change (a report); see ``TxOutbox.enqueue``."""
        async with self._db.write() as conn:
            return await _enqueue(self._db, conn, message)

    async def claim(
        self, worker: str, now: datetime, lease: timedelta, limit: int = 10
    ) -> builtins.list[OutboxMessage]:
        """Claim up to ``limit`` due messages for ``worker`` until ``now + lease``: pending ones
        whose ``not_before`` has come, and claimed ones whose lease has expired.
        Oldest first."""
        async with self._db.write() as conn:
            return await _claim(conn, worker, now, lease, limit)

    async def mark_sent(self, message_id: int, provider_id: str | None, now: datetime) -> None:
        """The transport accepted the message."""
        await self._update(
            message_id,
            status="sent",
            provider_id=provider_id,
            sent_at=_aware("now", now),
            lease_until=None,
        )

    async def mark_retry(self, message_id: int, error: str, not_before: datetime) -> None:
        """A temporary failure: one more failed attempt, and back to pending, to be claimed
        again from ``not_before``."""
        await self._update(
            message_id,
            status="pending",
            attempts=OUTBOX.c.attempts + 1,
            last_error=_error_text(error),
            not_before=_aware("not_before", not_before),
            claimed_by=None,
            lease_until=None,
        )

    async def mark_failed(self, message_id: int, error: str, now: datetime) -> None:
        """A permanent failure (or out of attempts): never sent."""
        await self._update(
            message_id,
            status="failed",
            attempts=OUTBOX.c.attempts + 1,
            last_error=_error_text(error),
            failed_at=_aware("now", now),
            lease_until=None,
        )

    async def claimants(self) -> builtins.list[str]:
        """The workers that hold claimed rows, whether their leases still run or not."""
        o = OUTBOX.c
        query = (
            select(o.claimed_by)
            .where(o.status == "claimed", o.claimed_by.is_not(None))
            .distinct()
            .order_by(o.claimed_by)
        )
        async with self._db.read() as conn:
            return [str(worker) for worker in (await conn.execute(query)).scalars()]

    async def release(self, workers: Sequence[str]) -> int:
        """The rows claimed by ``workers`` are pending again at once, due now (``not_before``
        kept) and not counted as a failed attempt: for a worker that knows their claimant is
        gone (an earlier life of its node). Returns how many rows were freed."""
        if not workers:
            return 0
        o = OUTBOX.c
        query = (
            update(OUTBOX)
            .where(o.status == "claimed", o.claimed_by.in_(list(workers)))
            .values(status="pending", claimed_by=None, lease_until=None)
        )
        async with self._db.write() as conn:
            result = await conn.execute(query)
        return int(result.rowcount or 0)

    async def _update(self, message_id: int, **values: Any) -> None:
        query = update(OUTBOX).where(OUTBOX.c.id == message_id)
        if values["status"] != "sent":
            # "sent" is final: a worker whose lease ran out must not undo another's success.
            query = query.where(OUTBOX.c.status != "sent")
        async with self._db.write() as conn:
            await conn.execute(query.values(**values))

    async def get(self, message_id: int) -> OutboxMessage | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(OUTBOX).where(OUTBOX.c.id == message_id))).first()
        return None if row is None else _outbox_from(row)

    async def by_provider_id(self, provider_id: str) -> OutboxMessage | None:
        """The message the provider knows as ``provider_id`` (a Twilio SID: its status
        callbacks name nothing else), or ``None``. Should a provider reuse an id, the newest
        message wins."""
        query = (
            select(OUTBOX)
            .where(OUTBOX.c.provider_id == provider_id)
            .order_by(OUTBOX.c.id.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _outbox_from(row)

    async def list(
        self,
        status: OutboxStatus | None = None,
        incident_number: int | None = None,
        limit: int = 100,
    ) -> builtins.list[OutboxMessage]:
        """Newest first."""
        query = select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(OUTBOX.c.status == status)
        if incident_number is not None:
            query = query.where(OUTBOX.c.incident_number == incident_number)
        async with self._db.read() as conn:
            return [_outbox_from(row) for row in await conn.execute(query)]
