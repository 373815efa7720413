"""``store.handovers``: people's actions a worker took in while another worker is the active
monitor (several workers, see :mod:`ctiwatch.handover`).

A row is written ``pending`` by the worker the person reached, with the action (``kind`` and
its arguments, the actor and the source address among them) and a ``deadline`` by that
worker's clock. The active monitor reads the pending rows and applies each in its own step: the
row becomes ``done`` with its ``result`` in the step's fenced transaction (``tx.handovers``), so
an action is applied exactly once or not at all, whichever worker leads. A row still pending at
its deadline is ``withdrawn`` by the worker that wrote it (an ``UPDATE … WHERE status =
'pending'``): after that no monitor applies it, and the person is told to try again. The two
``UPDATE``\\ s of one row exclude each other, so an action is never both applied and refused.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.engine import Database, StorageError
from ctiwatch.storage.leader import Fence, check_fence
from ctiwatch.storage.tables import HANDOVERS

HandoverStatus = Literal["pending", "done", "withdrawn"]
PENDING: HandoverStatus = "pending"
DONE: HandoverStatus = "done"
WITHDRAWN: HandoverStatus = "withdrawn"


class HandoverGone(StorageError):
    """The handover a step was to complete is no longer pending (withdrawn by the worker that
    took it in, or done already): the step must not commit."""


@dataclass(frozen=True, slots=True)
class Handover:
    """One handed-over action as stored."""

    id: int
    kind: str
    args: dict[str, Any]
    origin: str
    created_at: datetime
    deadline: datetime
    status: HandoverStatus
    result: dict[str, Any] | None = None
    done_at: datetime | None = None
    done_by: str | None = None


def _status(value: str) -> HandoverStatus:
    if value == PENDING:
        return PENDING
    if value == DONE:
        return DONE
    return WITHDRAWN


def _handover_from(row: Row[Any]) -> Handover:
    return Handover(
        id=int(row.id),
        kind=row.kind,
        args=dict(row.args or {}),
        origin=row.origin,
        created_at=row.created_at,
        deadline=row.deadline,
        status=_status(row.status),
        result=None if row.result is None else dict(row.result),
        done_at=row.done_at,
        done_by=row.done_by,
    )


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"handover: {name} must be timezone-aware UTC")
    return value


async def _complete(
    conn: AsyncConnection, id: int, result: dict[str, Any], at: datetime, by: str
) -> bool:
    done = await conn.execute(
        update(HANDOVERS)
        .where(HANDOVERS.c.id == id, HANDOVERS.c.status == PENDING)
        .values(status=DONE, result=result, done_at=_aware("at", at), done_by=by)
    )
    return bool(done.rowcount == 1)


class TxHandovers:
    """``tx.handovers``: inside the step's unit of work."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def complete(self, id: int, result: dict[str, Any], at: datetime, by: str) -> None:
        """Mark handover ``id`` done with ``result``; :class:`HandoverGone` (the whole unit of
        work rolls back) when it is no longer pending."""
        if not await _complete(self._conn, id, result, at, by):
            raise HandoverGone(f"handover {id} is no longer pending (withdrawn or done)")


class HandoverRepository:
    """``store.handovers``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        kind: str,
        args: dict[str, Any],
        *,
        origin: str,
        at: datetime,
        deadline: datetime,
    ) -> int:
        """Write a pending handover; its id."""
        insert = (
            HANDOVERS.insert()
            .values(
                kind=kind,
                args=args,
                origin=origin,
                created_at=_aware("at", at),
                deadline=_aware("deadline", deadline),
                status=PENDING,
            )
            .returning(HANDOVERS.c.id)
        )
        async with self._db.write() as conn:
            return int((await conn.execute(insert)).scalar_one())

    async def get(self, id: int) -> Handover | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(HANDOVERS).where(HANDOVERS.c.id == id))).first()
        return None if row is None else _handover_from(row)

    async def pending(self, now: datetime, limit: int = 50) -> builtins.list[Handover]:
        """The pending handovers whose deadline has not passed, oldest first."""
        query = (
            select(HANDOVERS)
            .where(HANDOVERS.c.status == PENDING, HANDOVERS.c.deadline > _aware("now", now))
            .order_by(HANDOVERS.c.id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_handover_from(row) for row in (await conn.execute(query)).all()]

    async def withdraw(self, id: int, at: datetime) -> bool:
        """Withdraw handover ``id`` if it is still pending; whether it was."""
        query = (
            update(HANDOVERS)
            .where(HANDOVERS.c.id == id, HANDOVERS.c.status == PENDING)
            .values(status=WITHDRAWN, done_at=_aware("at", at))
        )
        async with self._db.write() as conn:
            return bool((await conn.execute(query)).rowcount == 1)

    async def complete(
        self,
        id: int,
        result: dict[str, Any],
        at: datetime,
        by: str,
        *,
        fence: Fence | None = None,
    ) -> bool:
        """Mark handover ``id`` done with ``result`` outside a step (an action refused before
        it changed anything), fenced like a step; whether it was still pending."""
        async with self._db.write() as conn:
            if fence is not None:
                await check_fence(conn, fence)
            return await _complete(conn, id, result, at, by)

    async def forget(self, before: datetime) -> int:
        """Delete the handovers written before ``before`` (retention); how many."""
        query = HANDOVERS.delete().where(HANDOVERS.c.created_at < _aware("before", before))
        async with self._db.write() as conn:
            return int((await conn.execute(query)).rowcount or 0)
