"""``store.dead_letters``: inputs parked because the database refused them, and what counts as
a database fault worth retrying (:func:`is_transient`) rather than an input to park."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ctiwatch.storage.engine import Database
from ctiwatch.storage.records import DeadLetter
from ctiwatch.storage.tables import DEAD_LETTERS

MAX_REASON = 1_000
MAX_PAYLOAD = 64_000

# SQLSTATE classes of a database that is away or busy, not of a value it refuses:
# connection exceptions, insufficient resources, operator intervention (shutdown, restart),
# serialization failures and deadlocks, lock not available.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "40001", "40P01", "55P03")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being unreachable or busy (retry the same write later),
    as opposed to the database refusing what was written (park it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError | ConnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OperationalError | InterfaceError):
            return True  # SQLite "database is locked", a dropped connection
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return True
        if type(current).__name__ in ("ConnectionDoesNotExistError", "InterfaceError"):
            return True  # asyncpg's own, raised past SQLAlchemy by the COPY path
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def printable(text: str, limit: int) -> str:
    """``text`` as any database stores it: NUL shown as ``\\x00``, at most ``limit`` chars."""
    clean = text.replace("\x00", "\\x00")
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _letter_from(row: Row[Any]) -> DeadLetter:
    return DeadLetter(
        parked_at=row.parked_at,
        source=row.source,
        key=row.key,
        reason=row.reason,
        payload=row.payload,
        id=row.id,
    )


class DeadLetterRepository:
    """``store.dead_letters``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_many(self, letters: Sequence[DeadLetter]) -> None:
        """Park ``letters``; their texts are made storable first (NUL escaped, capped)."""
        if not letters:
            return
        rows = [
            {
                "parked_at": letter.parked_at,
                "source": printable(letter.source, 64),
                "key": printable(letter.key, 256),
                "reason": printable(letter.reason, MAX_REASON),
                "payload": printable(letter.payload, MAX_PAYLOAD),
            }
            for letter in letters
        ]
        async with self._db.write() as conn:
            await conn.execute(DEAD_LETTERS.insert(), rows)

    async def latest(self, limit: int = 20) -> builtins.list[DeadLetter]:
        """The most recently parked first."""
        query = (
            select(DEAD_LETTERS)
            .order_by(DEAD_LETTERS.c.parked_at.desc(), DEAD_LETTERS.c.id.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_letter_from(row) for row in await conn.execute(query)]

    async def count(self) -> int:
        async with self._db.read() as conn:
            value = (await conn.execute(select(func.count()).select_from(DEAD_LETTERS))).scalar()
        return int(value or 0)
