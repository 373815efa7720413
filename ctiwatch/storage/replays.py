"""Signed webhooks already acted on (``store.webhook_replays``).

A Twilio signature has no time in it: a request captured once stays valid for ever. What makes
a replay harmless is remembering each request's SID (with what it said, where one SID carries
several requests, as a message's status callbacks do) and refusing it the second time. Rows
older than the retention are deleted as new ones come, so the table holds at most the webhooks
of one retention period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from ctiwatch.storage.engine import Database
from ctiwatch.storage.tables import WEBHOOK_REPLAYS

# Longer than an incident's life: a request captured before it was resolved stays refused if
# it is reopened. Rows are a few dozen bytes; a busy year is a few hundred thousand of them.
REPLAY_RETENTION = timedelta(days=400)
MAX_KEY_LENGTH = 200


class WebhookReplayRepository:
    """``store.webhook_replays``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def first_time(
        self, key: str, at: datetime, retention: timedelta = REPLAY_RETENTION
    ) -> bool:
        """Remember ``key`` as received ``at``: True the first time, False for a replay.

        Also forgets the keys received before ``at - retention``.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("webhook replay: at must be timezone-aware UTC")
        if not key or len(key) > MAX_KEY_LENGTH or "\0" in key:
            raise ValueError(f"webhook replay: a key of 1 to {MAX_KEY_LENGTH} characters, no NUL")
        insert = self._db.insert(WEBHOOK_REPLAYS).values(key=key, received_at=at)
        async with self._db.write() as conn:
            await conn.execute(
                WEBHOOK_REPLAYS.delete().where(WEBHOOK_REPLAYS.c.received_at < at - retention)
            )
            done = await conn.execute(insert.on_conflict_do_nothing(index_elements=["key"]))
        return done.rowcount == 1

    async def count(self) -> int:
        async with self._db.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(WEBHOOK_REPLAYS))).scalar_one()
            )
