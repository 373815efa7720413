"""Incidents and their timelines.

Writes happen only inside a unit of work (``store.transaction()``), so an incident's state,
its timeline entries and its outbox rows commit together; reads are on ``store.incidents``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.engine import Database
from ctiwatch.storage.records import (
    INCIDENT_STATUSES,
    IncidentRecord,
    IncidentStatus,
    ScopeItem,
    TimelineEntry,
)
from ctiwatch.storage.tables import COUNTERS, INCIDENTS, TIMELINE
from sla.priority import Priority

_AMSTERDAM = "Europe/Amsterdam"


def _require_aware(record_name: str, name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{record_name}.{name} must be timezone-aware UTC")


def _incident_values(record: IncidentRecord) -> dict[str, Any]:
    if record.status not in INCIDENT_STATUSES:
        raise ValueError(f"incident {record.number}: status {record.status!r} is not open/resolved")
    for name in (
        "opened_at",
        "updated_at",
        "acknowledged_at",
        "resolved_at",
        "response_due",
        "update_due",
        "repair_due",
    ):
        _require_aware(f"incident {record.number}", name, getattr(record, name))
    return {
        "number": record.number,
        "customer": record.customer,
        "automatic": record.automatic,
        "priority": int(Priority(record.priority)),
        "status": record.status,
        "title": record.title,
        "opened_at": record.opened_at,
        "acknowledged_at": record.acknowledged_at,
        "resolved_at": record.resolved_at,
        "resolved_by": record.resolved_by,
        "response_due": record.response_due,
        "update_due": record.update_due,
        "repair_due": record.repair_due,
        "breaches": list(record.breaches),
        "scope": [item.to_json() for item in record.scope],
        "state": dict(record.state),
        "updated_at": record.updated_at,
    }


def _incident_from(row: Row[Any]) -> IncidentRecord:
    status: IncidentStatus = "open" if row.status == "open" else "resolved"
    return IncidentRecord(
        number=int(row.number),
        customer=row.customer,
        automatic=bool(row.automatic),
        priority=Priority(int(row.priority)),
        status=status,
        title=row.title,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        response_due=row.response_due,
        update_due=row.update_due,
        repair_due=row.repair_due,
        breaches=tuple(str(item) for item in row.breaches or ()),
        scope=tuple(ScopeItem.from_json(item) for item in row.scope or ()),
        state=dict(row.state or {}),
    )


def _timeline_from(row: Row[Any]) -> TimelineEntry:
    return TimelineEntry(
        incident_number=int(row.incident_number),
        at=row.at,
        kind=row.kind,
        detail=row.detail,
        actor=row.actor,
    )


def _open_query(customer: str) -> Select[Any]:
    return (
        select(INCIDENTS)
        .where(INCIDENTS.c.customer == customer, INCIDENTS.c.status == "open")
        .order_by(INCIDENTS.c.number)
    )


class IncidentNumberTaken(Exception):
    """A new incident's number is stored already (another writer handed it out)."""


class TxIncidents:
    """``tx.incidents``: incident writes (and locking reads) inside a unit of work."""

    def __init__(self, db: Database, conn: AsyncConnection) -> None:
        self._db = db
        self._conn = conn

    async def next_number(self) -> int:
        """Allocate the next incident number (rolled back with the transaction)."""
        result = await self._conn.execute(
            update(COUNTERS)
            .where(COUNTERS.c.name == "incident")
            .values(value=COUNTERS.c.value + 1)
            .returning(COUNTERS.c.value)
        )
        return int(result.scalar_one())

    async def save(self, record: IncidentRecord, *, generation: int = 0, new: bool = False) -> None:
        """Insert the incident, or replace every field of the stored one with that number,
        unless a newer leader ``generation`` wrote it last (then the stored row stays).

        ``new``: the incident was opened by this step, so its number must be free: a stored
        row with that number is an error (:class:`IncidentNumberTaken`), never overwritten.
        The incident counter (``counters.incident``) is moved up to the number either way."""
        values = _incident_values(record)
        values["generation"] = generation
        insert = self._db.insert(INCIDENTS).values(values)
        if new:
            inserted = await self._conn.execute(
                insert.on_conflict_do_nothing(index_elements=["number"]).returning(
                    INCIDENTS.c.number
                )
            )
            if inserted.first() is None:
                raise IncidentNumberTaken(
                    f"incident {record.number} is stored already: its number was handed out "
                    "by another writer"
                )
        else:
            await self._conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["number"],
                    set_={name: insert.excluded[name] for name in values if name != "number"},
                    where=INCIDENTS.c.generation <= insert.excluded.generation,
                )
            )
        await self._conn.execute(
            update(COUNTERS)
            .where(COUNTERS.c.name == "incident", COUNTERS.c.value < record.number)
            .values(value=record.number)
        )

    async def get(self, number: int, *, for_update: bool = False) -> IncidentRecord | None:
        """With ``for_update`` the row stays locked until the unit of work ends (PostgreSQL;
        SQLite's write transaction already excludes other writers)."""
        query = select(INCIDENTS).where(INCIDENTS.c.number == number)
        if for_update:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return None if row is None else _incident_from(row)

    async def open_for_customer(
        self, customer: str, *, for_update: bool = False
    ) -> list[IncidentRecord]:
        query = _open_query(customer)
        if for_update:
            query = query.with_for_update()
        return [_incident_from(row) for row in await self._conn.execute(query)]


class TxTimeline:
    """``tx.timeline``."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, entry: TimelineEntry) -> None:
        await self.add_many([entry])

    async def add_many(self, entries: Iterable[TimelineEntry]) -> None:
        rows = []
        for entry in entries:
            _require_aware("timeline entry", "at", entry.at)
            rows.append(
                {
                    "incident_number": entry.incident_number,
                    "at": entry.at,
                    "kind": entry.kind,
                    "detail": entry.detail,
                    "actor": entry.actor,
                }
            )
        if rows:
            await self._conn.execute(TIMELINE.insert(), rows)


class IncidentRepository:
    """``store.incidents``: reads. Writes go through ``store.transaction()``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def last_number(self) -> int:
        """The highest incident number handed out: the counter, or a stored incident's number
        if one is higher (rows written before the counter was kept)."""
        async with self._db.read() as conn:
            counter = (
                await conn.execute(select(COUNTERS.c.value).where(COUNTERS.c.name == "incident"))
            ).scalar()
            highest = (await conn.execute(select(func.max(INCIDENTS.c.number)))).scalar()
        return max(int(counter or 0), int(highest or 0))

    async def get(self, number: int) -> IncidentRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(INCIDENTS).where(INCIDENTS.c.number == number))
            ).first()
        return None if row is None else _incident_from(row)

    async def list(
        self,
        status: IncidentStatus | None = None,
        customer: str | None = None,
        limit: int = 100,
    ) -> builtins.list[IncidentRecord]:
        """Newest first."""
        query = select(INCIDENTS).order_by(INCIDENTS.c.number.desc()).limit(limit)
        if status is not None:
            query = query.where(INCIDENTS.c.status == status)
        if customer is not None:
            query = query.where(INCIDENTS.c.customer == customer)
        async with self._db.read() as conn:
            return [_incident_from(row) for row in await conn.execute(query)]

    async def open_for_customer(self, customer: str) -> builtins.list[IncidentRecord]:
        async with self._db.read() as conn:
            return [_incident_from(row) for row in await conn.execute(_open_query(customer))]

    async def timeline(self, number: int) -> builtins.list[TimelineEntry]:
        """Oldest first."""
        query = (
            select(TIMELINE)
            .where(TIMELINE.c.incident_number == number)
            .order_by(TIMELINE.c.at, TIMELINE.c.id)
        )
        async with self._db.read() as conn:
            return [_timeline_from(row) for row in await conn.execute(query)]

    async def in_month(self, month: date, tz: str = _AMSTERDAM) -> builtins.list[IncidentRecord]:
        """Incidents opened in the calendar month of ``month`` as seen in ``tz`` (the SLA's
        months are local months), oldest first."""
        zone = ZoneInfo(tz)
        start = datetime(month.year, month.month, 1, tzinfo=zone)
        following = (
            datetime(month.year + 1, 1, 1, tzinfo=zone)
            if month.month == 12
            else datetime(month.year, month.month + 1, 1, tzinfo=zone)
        )
        query = (
            select(INCIDENTS)
            .where(INCIDENTS.c.opened_at >= start, INCIDENTS.c.opened_at < following)
            .order_by(INCIDENTS.c.opened_at, INCIDENTS.c.number)
        )
        async with self._db.read() as conn:
            return [_incident_from(row) for row in await conn.execute(query)]
