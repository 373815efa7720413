"""Maintenance windows and remote probe agents."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.accounts import AuditEntry, add_audit
from ctiwatch.storage.engine import Database
from ctiwatch.storage.records import (
    AGENT_STATUSES,
    AgentRecord,
    AgentStatus,
    MaintenanceAction,
    MaintenanceRecord,
    MaintenanceRevision,
)
from ctiwatch.storage.tables import AGENTS, MAINTENANCE, MAINTENANCE_REVISIONS


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware UTC")
    return value


def _spans(value: Any) -> tuple[tuple[datetime, datetime], ...]:
    return tuple(
        (datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in value or ()
    )


def _window_from(row: Row[Any]) -> MaintenanceRecord:
    return MaintenanceRecord(
        id=int(row.id),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        services=tuple(row.services or ()),
        customers=tuple(row.customers or ()),
        locations=tuple(row.locations or ()),
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        cancelled_by=row.cancelled_by,
        cancelled_at=row.cancelled_at,
        recurrence=row.recurrence,
        occurrences=_spans(row.occurrences),
        emergency=bool(row.emergency),
        justification=row.justification or "",
        revision=int(row.revision or 1),
    )


def _revision_from(row: Row[Any]) -> MaintenanceRevision:
    action: MaintenanceAction = row.action
    return MaintenanceRevision(
        window_id=int(row.window_id),
        revision=int(row.revision),
        action=action,
        at=row.at,
        actor=row.actor,
        reason=row.reason,
        before=None if row.before is None else dict(row.before),
    )


def _window_values(window: MaintenanceRecord) -> dict[str, Any]:
    """The columns a window's own fields fill (not who created or cancelled it)."""
    starts_at = _aware("maintenance window starts_at", window.starts_at)
    ends_at = _aware("maintenance window ends_at", window.ends_at)
    if ends_at <= starts_at:
        raise ValueError("maintenance window: ends_at must be after starts_at")
    for start, end in window.occurrences:
        _aware("maintenance occurrence start", start)
        if _aware("maintenance occurrence end", end) <= start:
            raise ValueError("maintenance occurrence: end must be after start")
    return {
        "starts_at": starts_at,
        "ends_at": ends_at,
        "services": list(window.services),
        "customers": list(window.customers),
        "locations": list(window.locations),
        "reason": window.reason,
        "recurrence": window.recurrence,
        "occurrences": [[a.isoformat(), b.isoformat()] for a, b in window.occurrences] or None,
        "series_ends_at": window.series_ends_at,
        "emergency": window.emergency,
        "justification": window.justification,
    }


async def _get(conn: AsyncConnection, window_id: int) -> MaintenanceRecord | None:
    row = (
        await conn.execute(select(MAINTENANCE).where(MAINTENANCE.c.id == window_id))
    ).one_or_none()
    return None if row is None else _window_from(row)


async def _add_revision(conn: AsyncConnection, revision: MaintenanceRevision) -> None:
    await conn.execute(
        MAINTENANCE_REVISIONS.insert().values(
            window_id=revision.window_id,
            revision=revision.revision,
            action=revision.action,
            at=_aware("revision at", revision.at),
            actor=revision.actor,
            reason=revision.reason,
            before=None if revision.before is None else dict(revision.before),
        )
    )


async def _add(conn: AsyncConnection, window: MaintenanceRecord, why: str) -> MaintenanceRecord:
    values = {
        **_window_values(window),
        "created_by": window.created_by,
        "created_at": _aware("maintenance window created_at", window.created_at),
        "revision": 1,
    }
    row = (await conn.execute(MAINTENANCE.insert().values(values).returning(MAINTENANCE))).one()
    stored = _window_from(row)
    assert stored.id is not None
    await _add_revision(
        conn,
        MaintenanceRevision(stored.id, 1, "scheduled", window.created_at, window.created_by, why),
    )
    return stored


async def _change(
    conn: AsyncConnection,
    window_id: int,
    changed: MaintenanceRecord,
    by: str,
    at: datetime,
    why: str,
) -> MaintenanceRecord | None:
    """The window's own fields become ``changed``'s; the fields before are kept as a
    revision. None when there is no such window (or it is cancelled)."""
    before = await _get(conn, window_id)
    if before is None or before.cancelled:
        return None
    revision = before.revision + 1
    await conn.execute(
        update(MAINTENANCE)
        .where(MAINTENANCE.c.id == window_id)
        .values(**_window_values(changed), revision=revision)
    )
    await _add_revision(
        conn, MaintenanceRevision(window_id, revision, "changed", at, by, why, before.as_before())
    )
    return await _get(conn, window_id)


async def _cancel(
    conn: AsyncConnection, window_id: int, by: str, at: datetime, why: str
) -> MaintenanceRecord | None:
    before = await _get(conn, window_id)
    if before is None:
        return None
    if before.cancelled:
        return before  # cancelling twice keeps the first cancellation
    revision = before.revision + 1
    await conn.execute(
        update(MAINTENANCE)
        .where(MAINTENANCE.c.id == window_id, MAINTENANCE.c.cancelled_at.is_(None))
        .values(cancelled_by=by, cancelled_at=_aware("cancelled_at", at), revision=revision)
    )
    await _add_revision(
        conn,
        MaintenanceRevision(window_id, revision, "cancelled", at, by, why, before.as_before()),
    )
    return await _get(conn, window_id)


class TxMaintenance:
    """``tx.maintenance`` inside a unit of work: a window's change, its revision and the
    notices it causes (``tx.outbox``) commit together."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, window: MaintenanceRecord, why: str = "") -> MaintenanceRecord:
        return await _add(self._conn, window, why)

    async def get(self, window_id: int) -> MaintenanceRecord | None:
        return await _get(self._conn, window_id)

    async def change(
        self, window_id: int, changed: MaintenanceRecord, by: str, at: datetime, why: str
    ) -> MaintenanceRecord | None:
        return await _change(self._conn, window_id, changed, by, at, why)

    async def cancel(
        self, window_id: int, by: str, at: datetime, why: str = ""
    ) -> MaintenanceRecord | None:
        return await _cancel(self._conn, window_id, by, at, why)


class MaintenanceRepository:
    """``store.maintenance``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, window: MaintenanceRecord, why: str = "") -> MaintenanceRecord:
        """Store a new window (revision 1, ``scheduled``); returns it with its ``id``."""
        async with self._db.write() as conn:
            return await _add(conn, window, why)

    async def list(self, ending_after: datetime | None = None) -> builtins.list[MaintenanceRecord]:
        """All windows, or those whose last occurrence is not over by ``ending_after``; by
        start time."""
        query = select(MAINTENANCE).order_by(MAINTENANCE.c.starts_at, MAINTENANCE.c.id)
        if ending_after is not None:
            series_end = func.coalesce(MAINTENANCE.c.series_ends_at, MAINTENANCE.c.ends_at)
            query = query.where(series_end > _aware("ending_after", ending_after))
        async with self._db.read() as conn:
            return [_window_from(row) for row in await conn.execute(query)]

    async def get(self, window_id: int) -> MaintenanceRecord | None:
        async with self._db.read() as conn:
            return await _get(conn, window_id)

    async def revisions(self, window_id: int) -> builtins.list[MaintenanceRevision]:
        """The window's history, oldest first."""
        query = (
            select(MAINTENANCE_REVISIONS)
            .where(MAINTENANCE_REVISIONS.c.window_id == window_id)
            .order_by(MAINTENANCE_REVISIONS.c.revision)
        )
        async with self._db.read() as conn:
            return [_revision_from(row) for row in await conn.execute(query)]

    async def cancel(
        self, window_id: int, by: str, at: datetime, why: str = ""
    ) -> MaintenanceRecord | None:
        """Mark a window cancelled by ``by`` at ``at`` (the record stays, as history); None when
        there is no such window. Cancelling twice keeps the first cancellation."""
        async with self._db.write() as conn:
            return await _cancel(conn, window_id, by, at, why)

    async def delete(self, window_id: int) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(MAINTENANCE.delete().where(MAINTENANCE.c.id == window_id))
        return result.rowcount == 1

    async def active_at(self, now: datetime) -> builtins.list[MaintenanceRecord]:
        """Windows not cancelled with an occurrence ``start <= now < end``."""
        now = _aware("now", now)
        series_end = func.coalesce(MAINTENANCE.c.series_ends_at, MAINTENANCE.c.ends_at)
        query = (
            select(MAINTENANCE)
            .where(
                MAINTENANCE.c.starts_at <= now,
                series_end > now,
                MAINTENANCE.c.cancelled_at.is_(None),
            )
            .order_by(MAINTENANCE.c.starts_at, MAINTENANCE.c.id)
        )
        async with self._db.read() as conn:
            found = [_window_from(row) for row in await conn.execute(query)]
        return [w for w in found if any(a <= now < b for a, b in w.spans)]


def _agent_from(row: Row[Any]) -> AgentRecord:
    status: AgentStatus = "online" if row.status == "online" else "offline"
    return AgentRecord(
        name=row.name, last_seen=row.last_seen, status=status, meta=dict(row.meta or {})
    )


AGENT_PAGING_KEY = "paging"  # in an agent's meta: alerting.internal.AgentPaging.to_dict()


class AgentRepository:
    """``store.agents``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, agent: AgentRecord) -> None:
        """Insert or replace the agent's row (an older ``last_seen`` never wins)."""
        if agent.status not in AGENT_STATUSES:
            raise ValueError(f"agent {agent.name!r}: status {agent.status!r} is not online/offline")
        values = {
            "name": agent.name,
            "last_seen": _aware(f"agent {agent.name!r} last_seen", agent.last_seen),
            "status": agent.status,
            "meta": dict(agent.meta),
        }
        insert = self._db.insert(AGENTS).values(values)
        excluded = insert.excluded
        async with self._db.write() as conn:
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "last_seen": excluded.last_seen,
                        "status": excluded.status,
                        "meta": excluded.meta,
                    },
                    where=AGENTS.c.last_seen <= excluded.last_seen,
                )
            )

    async def set_paging(
        self, name: str, paging: Mapping[str, Any], *, audit: AuditEntry | None = None
    ) -> bool:
        """Store what people decided about agent ``name``'s pages (``meta["paging"]``, kept by
        later health updates), with its ``audit`` line in the same transaction; ``False``
        (nothing written) when no agent of that name was ever heard of."""
        async with self._db.write() as conn:
            row = (await conn.execute(select(AGENTS).where(AGENTS.c.name == name))).first()
            if row is None:
                return False
            meta = dict(row.meta or {})
            meta[AGENT_PAGING_KEY] = dict(paging)
            await conn.execute(update(AGENTS).where(AGENTS.c.name == name).values(meta=meta))
            if audit is not None:
                await add_audit(conn, audit)
        return True

    async def get(self, name: str) -> AgentRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(AGENTS).where(AGENTS.c.name == name))).first()
        return None if row is None else _agent_from(row)

    async def list(self) -> builtins.list[AgentRecord]:
        async with self._db.read() as conn:
            return [
                _agent_from(row)
                for row in await conn.execute(select(AGENTS).order_by(AGENTS.c.name))
            ]

    async def mark_offline(self, seen_before: datetime) -> builtins.list[str]:
        """Agents online but silent since before ``seen_before`` go offline; returns their
        names (sorted), so the caller can report each change once."""
        async with self._db.write() as conn:
            return await _mark_offline(conn, _aware("seen_before", seen_before))


async def _mark_offline(conn: AsyncConnection, seen_before: datetime) -> list[str]:
    result = await conn.execute(
        update(AGENTS)
        .where(AGENTS.c.status == "online", AGENTS.c.last_seen < seen_before)
        .values(status="offline")
        .returning(AGENTS.c.name)
    )
    return sorted(result.scalars().all())
