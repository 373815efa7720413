"""``store.leader``: the lease that makes one worker the active monitor, and its fence.

One row per lease name (``monitor``): ``holder`` (who), ``generation`` (grows by one at every
change of holder), ``expires_at`` (the holder renews it every few seconds; once it has passed,
any worker may take the lease over) and ``address`` (the holder's web address, for the others'
pages). Every change goes through one write transaction that locks the row first
(``SELECT .. FOR UPDATE`` on PostgreSQL; SQLite's write transaction excludes other writers), so
two workers never both win.

The fence: every step of the monitor runs :func:`check_fence` inside its own transaction. It
reads the row ``FOR SHARE``, so a takeover (an ``UPDATE`` of that row) waits for a step in flight
to commit, and a step that starts after the takeover sees the new generation and is refused
with :class:`Fenced`: a paused old leader cannot write, whatever its clock says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.engine import Database, StorageError
from ctiwatch.storage.tables import LEADER

MONITOR = "monitor"


class Fenced(StorageError):
    """A write of a generation that is no longer the current leader's: refused, rolled back."""


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease as stored."""

    name: str
    holder: str
    generation: int
    expires_at: datetime
    acquired_at: datetime
    address: str = ""

    def held_by(self, holder: str) -> bool:
        return self.holder == holder

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Fence:
    """What a step's transaction checks: lease ``name`` still at ``generation``."""

    name: str
    generation: int


def _lease_from(row: Row[Any]) -> Lease:
    return Lease(
        name=row.name,
        holder=row.holder,
        generation=int(row.generation),
        expires_at=row.expires_at,
        acquired_at=row.acquired_at,
        address=row.address or "",
    )


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"leader lease: {name} must be timezone-aware UTC")
    return value


async def check_fence(conn: AsyncConnection, fence: Fence) -> None:
    """Raise :class:`Fenced` unless lease ``fence.name`` is still at ``fence.generation``; the
    row stays share-locked until the transaction ends (PostgreSQL), so no takeover commits in
    between."""
    query = select(LEADER.c.generation, LEADER.c.holder).where(LEADER.c.name == fence.name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = (await conn.execute(query)).first()
    current = None if row is None else int(row.generation)
    if current != fence.generation:
        holder = "nobody" if row is None else str(row.holder)
        raise Fenced(
            f"this worker's leadership (generation {fence.generation}) is over: "
            f"generation {current} of {holder} is the active monitor now"
        )


class LeaderRepository:
    """``store.leader``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, name: str = MONITOR) -> Lease | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(LEADER).where(LEADER.c.name == name))).first()
        return None if row is None else _lease_from(row)

    async def acquire(
        self,
        holder: str,
        now: datetime,
        duration: timedelta,
        *,
        name: str = MONITOR,
        address: str = "",
        gone: Callable[[str], bool] | None = None,
    ) -> Lease | None:
        """Take or keep lease ``name`` for ``holder`` until ``now + duration``; ``None`` when
        another holder's lease runs on.

        Kept (same generation) when ``holder`` holds it already; taken over (generation + 1)
        when it is free, has expired, or ``gone(previous_holder)`` says its holder is known to
        be dead (an earlier life of this node)."""
        _aware("now", now)
        until = now + duration
        async with self._db.write() as conn:
            query = select(LEADER).where(LEADER.c.name == name).with_for_update()
            row = (await conn.execute(query)).first()
            if row is None:
                insert = (
                    self._db.insert(LEADER)
                    .values(
                        name=name,
                        holder=holder,
                        generation=1,
                        expires_at=until,
                        acquired_at=now,
                        address=address,
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(LEADER)
                )
                created = (await conn.execute(insert)).first()
                return None if created is None else _lease_from(created)
            lease = _lease_from(row)
            if lease.held_by(holder):
                values: dict[str, Any] = {"expires_at": until, "address": address}
            elif lease.expired(now) or (gone is not None and gone(lease.holder)):
                values = {
                    "holder": holder,
                    "generation": lease.generation + 1,
                    "expires_at": until,
                    "acquired_at": now,
                    "address": address,
                }
            else:
                return None
            changed = (
                await conn.execute(
                    update(LEADER).where(LEADER.c.name == name).values(**values).returning(LEADER)
                )
            ).first()
            return None if changed is None else _lease_from(changed)

    async def renew(self, lease: Lease, now: datetime, duration: timedelta) -> Lease | None:
        """Extend ``lease`` until ``now + duration`` if it is still its holder's at its
        generation; ``None`` when it is lost."""
        _aware("now", now)
        query = (
            update(LEADER)
            .where(
                LEADER.c.name == lease.name,
                LEADER.c.holder == lease.holder,
                LEADER.c.generation == lease.generation,
            )
            .values(expires_at=now + duration)
            .returning(LEADER)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _lease_from(row)

    async def release(self, lease: Lease, now: datetime) -> bool:
        """Give ``lease`` up (a clean stop): expired now, so another worker takes it at its
        next try instead of after the lease. The generation stays: the next holder bumps it."""
        _aware("now", now)
        query = (
            update(LEADER)
            .where(
                LEADER.c.name == lease.name,
                LEADER.c.holder == lease.holder,
                LEADER.c.generation == lease.generation,
            )
            .values(expires_at=now)
        )
        async with self._db.write() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)


MEMBER_PREFIX = "worker/"  # a member's row in ``leader``: ``worker/<holder>``


@dataclass(frozen=True, slots=True)
class Member:
    """A worker as its heartbeat row says: who, since when, until when it counts as alive."""

    holder: str
    expires_at: datetime
    joined_at: datetime
    address: str = ""


class MemberRepository:
    """``store.members``: which workers are alive, for sharing the probing between them.

    Each worker keeps a row of its own in the lease table (``name`` = ``worker/<holder>``,
    ``generation`` 0), its heartbeat: ``expires_at`` moves on at every beat and the row counts
    while it lies ahead. No row is ever fenced or taken over: a worker writes only its own."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def beat(
        self,
        holder: str,
        now: datetime,
        duration: timedelta,
        *,
        address: str = "",
        forget_before: datetime | None = None,
    ) -> None:
        """``holder`` is alive until ``now + duration`` (its row created at its first beat).
        With ``forget_before``, the rows of members expired before it are deleted (a row per
        process start would otherwise pile up)."""
        _aware("now", now)
        until = now + duration
        insert = self._db.insert(LEADER).values(
            name=MEMBER_PREFIX + holder,
            holder=holder,
            generation=0,
            expires_at=until,
            acquired_at=now,
            address=address,
        )
        upsert = insert.on_conflict_do_update(
            index_elements=["name"], set_={"expires_at": until, "address": address}
        )
        async with self._db.write() as conn:
            await conn.execute(upsert)
            if forget_before is not None:
                await conn.execute(
                    delete(LEADER).where(
                        LEADER.c.name.startswith(MEMBER_PREFIX, autoescape=True),
                        LEADER.c.expires_at < _aware("forget_before", forget_before),
                    )
                )

    async def alive(self, now: datetime) -> list[Member]:
        """The members whose heartbeat has not run out at ``now``, by holder."""
        _aware("now", now)
        query = (
            select(LEADER)
            .where(
                LEADER.c.name.startswith(MEMBER_PREFIX, autoescape=True),
                LEADER.c.expires_at > now,
            )
            .order_by(LEADER.c.holder)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Member(r.holder, r.expires_at, r.acquired_at, r.address or "") for r in rows]

    async def leave(self, holder: str) -> bool:
        """A clean stop: ``holder``'s row is gone, so the others take its share at once."""
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(LEADER).where(LEADER.c.name == MEMBER_PREFIX + holder)
            )
        return bool(result.rowcount)
