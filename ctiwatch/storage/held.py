"""``store.held``: on-call SMS held outside support hours for the next opening (sla.md "Paging").

The monitor decides what is held and when it goes out (``alerting.paging``); a step's newly held
messages are added and the ones it sent out removed in the step's own transaction
(``tx.held``), beside the incident, timeline and outbox rows, so a held message is stored with
the state change that held it, survives a restart (``ctiwatch run`` gives the stored ones back to
the monitor) and goes out once: its removal commits with the outbox row of the digest.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.model import Channel, OutgoingMessage
from ctiwatch.storage.engine import Database
from ctiwatch.storage.tables import HELD_MESSAGES

_CHANNELS: dict[str, Channel] = {"email": "email", "sms": "sms", "voice": "voice"}


def _message_from(row: Row[Any]) -> OutgoingMessage:
    return OutgoingMessage(
        channel=_CHANNELS[row.channel],
        to=row.recipient,
        kind=row.kind,
        subject=row.subject,
        text=row.body,
        idempotency_key=row.idempotency_key,
        incident=row.incident_number,
        at=row.held_at.astimezone(UTC),
        payload={str(k): str(v) for k, v in dict(row.payload or {}).items()},
    )


class TxHeld:
    """``tx.held``: inside a unit of work."""

    def __init__(self, db: Database, conn: AsyncConnection) -> None:
        self._db = db
        self._conn = conn

    async def add(self, message: OutgoingMessage) -> None:
        """Hold ``message`` (its idempotency key once: holding it again changes nothing)."""
        values = {
            "idempotency_key": message.idempotency_key,
            "incident_number": message.incident,
            "channel": message.channel,
            "recipient": message.to,
            "kind": message.kind,
            "subject": message.subject,
            "body": message.text,
            "payload": dict(message.payload),
            "held_at": message.at,
        }
        insert = self._db.insert(HELD_MESSAGES).values(**values)
        await self._conn.execute(insert.on_conflict_do_nothing(index_elements=["idempotency_key"]))

    async def remove(self, keys: Iterable[str]) -> None:
        """The held messages ``keys`` went out (in this unit of work's digest)."""
        wanted = list(keys)
        if wanted:
            await self._conn.execute(
                HELD_MESSAGES.delete().where(HELD_MESSAGES.c.idempotency_key.in_(wanted))
            )


class HeldRepository:
    """``store.held``: what is waiting, oldest first."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self) -> builtins.list[OutgoingMessage]:
        query = select(HELD_MESSAGES).order_by(HELD_MESSAGES.c.held_at, HELD_MESSAGES.c.id)
        async with self._db.read() as conn:
            return [_message_from(row) for row in (await conn.execute(query)).all()]
