"""Maintenance windows and remote probe agents."""

from __future__ import annotations

import builtins
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.accounts import AuditEntry, add_audit
from ctiwatch.storage.engine import Database
from ctiwatch.storage.records import AGENT_STATUSES, AgentRecord, AgentStatus, MaintenanceRecord
from ctiwatch.storage.tables import AGENTS, MAINTENANCE


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware UTC")
    return value


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
    )


class MaintenanceRepository:
    """``store.maintenance``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, window: MaintenanceRecord, *, audit: AuditEntry | None = None
    ) -> MaintenanceRecord:
        """Store a new window; returns it with its ``id``. ``audit``: its audit line, written
        in the same transaction (its ``target`` gains the new id)."""
        starts_at = _aware("maintenance window starts_at", window.starts_at)
        ends_at = _aware("maintenance window ends_at", window.ends_at)
        if ends_at <= starts_at:
            raise ValueError("maintenance window: ends_at must be after starts_at")
        values = {
            "starts_at": starts_at,
            "ends_at": ends_at,
            "services": list(window.services),
            "customers": list(window.customers),
            "locations": list(window.locations),
            "reason": window.reason,
            "created_by": window.created_by,
            "created_at": _aware("maintenance window created_at", window.created_at),
        }
        async with self._db.write() as conn:
            row = (
                await conn.execute(MAINTENANCE.insert().values(values).returning(MAINTENANCE))
            ).one()
            if audit is not None:
                target = f"{audit.target} {row.id}".strip()
                await add_audit(conn, replace(audit, target=target))
        return _window_from(row)

    async def list(self, ending_after: datetime | None = None) -> builtins.list[MaintenanceRecord]:
        """All windows, or those not over by ``ending_after``; by start time."""
        query = select(MAINTENANCE).order_by(MAINTENANCE.c.starts_at, MAINTENANCE.c.id)
        if ending_after is not None:
            query = query.where(MAINTENANCE.c.ends_at > _aware("ending_after", ending_after))
        async with self._db.read() as conn:
            return [_window_from(row) for row in await conn.execute(query)]

    async def get(self, window_id: int) -> MaintenanceRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(MAINTENANCE).where(MAINTENANCE.c.id == window_id))
            ).one_or_none()
        return None if row is None else _window_from(row)

    async def cancel(
        self, window_id: int, by: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> MaintenanceRecord | None:
        """Mark a window cancelled by ``by`` at ``at`` (the record stays, as history); None when
        there is no such window. Cancelling twice keeps the first cancellation."""
        async with self._db.write() as conn:
            await conn.execute(
                update(MAINTENANCE)
                .where(MAINTENANCE.c.id == window_id, MAINTENANCE.c.cancelled_at.is_(None))
                .values(cancelled_by=by, cancelled_at=_aware("cancelled_at", at))
            )
            if audit is not None:
                await add_audit(conn, audit)
        return await self.get(window_id)

    async def delete(self, window_id: int) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(MAINTENANCE.delete().where(MAINTENANCE.c.id == window_id))
        return result.rowcount == 1

    async def active_at(self, now: datetime) -> builtins.list[MaintenanceRecord]:
        """Windows not cancelled with ``starts_at <= now < ends_at``."""
        now = _aware("now", now)
        query = (
            select(MAINTENANCE)
            .where(
                MAINTENANCE.c.starts_at <= now,
                MAINTENANCE.c.ends_at > now,
                MAINTENANCE.c.cancelled_at.is_(None),
            )
            .order_by(MAINTENANCE.c.starts_at, MAINTENANCE.c.id)
        )
        async with self._db.read() as conn:
            return [_window_from(row) for row in await conn.execute(query)]


def _agent_from(row: Row[Any]) -> AgentRecord:
    status: AgentStatus = "online" if row.status == "online" else "offline"
    return AgentRecord(
        name=row.name, last_seen=row.last_seen, status=status, meta=dict(row.meta or {})
    )


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
