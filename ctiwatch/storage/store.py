"""``Store``: the one owner of the database engine, and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ctiwatch.storage import migrate
from ctiwatch.storage.accounts import AccountRepository, TxAudit
from ctiwatch.storage.dead_letters import DeadLetterRepository
from ctiwatch.storage.engine import Database, StorageError, normalize_url, safe_url
from ctiwatch.storage.handovers import HandoverRepository, TxHandovers
from ctiwatch.storage.held import HeldRepository, TxHeld
from ctiwatch.storage.incidents import IncidentRepository, TxIncidents, TxTimeline
from ctiwatch.storage.leader import Fence, LeaderRepository, MemberRepository, check_fence
from ctiwatch.storage.links import CustomerLinkRepository
from ctiwatch.storage.maintenance import AgentRepository, MaintenanceRepository, TxMaintenance
from ctiwatch.storage.outbox import OutboxRepository, TxOutbox, delivered_before
from ctiwatch.storage.replays import WebhookReplayRepository
from ctiwatch.storage.results import ResultRepository, delete_older, delete_where
from ctiwatch.storage.tables import OUTBOX, PROBE_RESULTS, ROLLUPS_HOUR, ROLLUPS_MINUTE


@dataclass(frozen=True, slots=True)
class Transaction:
    """One unit of work: everything done through it commits together or not at all."""

    incidents: TxIncidents
    timeline: TxTimeline
    outbox: TxOutbox
    audit: TxAudit
    maintenance: TxMaintenance
    held: TxHeld
    handovers: TxHandovers


class Store:
    """Repositories over one database. Create with ``await Store.open(url)`` or
    ``async with Store.open(url) as store``; the schema is migrated to the newest revision."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.results = ResultRepository(db)
        self.incidents = IncidentRepository(db)
        self.outbox = OutboxRepository(db)
        self.maintenance = MaintenanceRepository(db)
        self.agents = AgentRepository(db)
        self.webhook_replays = WebhookReplayRepository(db)
        self.dead_letters = DeadLetterRepository(db)
        self.accounts = AccountRepository(db)
        self.held = HeldRepository(db)
        self.leader = LeaderRepository(db)
        self.members = MemberRepository(db)
        self.customer_links = CustomerLinkRepository(db)
        self.handovers = HandoverRepository(db)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, echo: bool = False) -> _Opening:
        """Connect to ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql://...``) and,
        unless ``migrate=False``, run the migrations. Awaitable and an async context manager.

        Raises ``ConfigError`` for a URL ctiwatch cannot use and ``StorageError`` when the
        database cannot be reached or migrated."""
        return _Opening(url, migrate=migrate, echo=echo)

    @property
    def url(self) -> str:
        """The URL in use, password hidden."""
        return safe_url(self._db.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    async def close(self) -> None:
        await self._db.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def migrate(self) -> str | None:
        """Upgrade to the newest schema (idempotent); returns the revision now in place."""
        return await migrate.upgrade(self._db)

    async def revision(self) -> str | None:
        return await migrate.current_revision(self._db)

    @asynccontextmanager
    async def transaction(self, fence: Fence | None = None) -> AsyncIterator[Transaction]:
        """``async with store.transaction() as tx:`` — an incident change, its timeline
        entries and its outbox messages commit together; an exception rolls all back.

        Inside, write only through ``tx``: another store write from the same task raises
        ``StorageError`` (it would not be part of this unit of work). Reads are fine. Keep
        the block short: on SQLite it holds the database's single write lock.

        With ``fence`` the transaction first checks that the leader lease is still at the
        fence's generation (:class:`~ctiwatch.storage.leader.Fenced` otherwise, nothing
        written) and keeps it so until the commit: the monitor's steps on several workers."""
        async with self._db.write() as conn:
            if fence is not None:
                await check_fence(conn, fence)
            yield Transaction(
                incidents=TxIncidents(self._db, conn),
                timeline=TxTimeline(conn),
                outbox=TxOutbox(self._db, conn),
                audit=TxAudit(conn),
                maintenance=TxMaintenance(conn),
                held=TxHeld(self._db, conn),
                handovers=TxHandovers(conn),
            )

    async def apply_retention(
        self,
        now: datetime,
        raw: timedelta = timedelta(days=14),
        rollups: timedelta = timedelta(days=400),
        minute_rollups: timedelta | None = None,
        outbox: timedelta = timedelta(days=90),
    ) -> dict[str, int]:
        """Delete what is older than its retention: raw results with ``at < now - raw``;
        minute rollups (kept as long as ``minute_rollups``, default ``raw``: they only serve
        recent windows) and hour rollups (``rollups``) whose whole bucket ended by the
        cutoff; outbox messages that were sent (``sent_at``) or failed (``failed_at``) before
        ``now - outbox``. Pending and claimed messages are never deleted, however old; handovers
        (people's actions handed to the active monitor) written a week before ``now``.
        Returns rows deleted per table.

        Incidents and their timelines are kept for good: they are the SLA history that the
        KPI report reads (and a deleted message's failure is on its incident's timeline)."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("apply_retention: now must be timezone-aware UTC")
        minute_keep = raw if minute_rollups is None else minute_rollups
        db = self._db
        minute, hour = timedelta(minutes=1), timedelta(hours=1)
        return {
            "probe_results": await delete_older(db, PROBE_RESULTS, "at", now - raw),
            "rollups_minute": await delete_older(
                db, ROLLUPS_MINUTE, "bucket", now - minute_keep - minute, inclusive=True
            ),
            "rollups_hour": await delete_older(
                db, ROLLUPS_HOUR, "bucket", now - rollups - hour, inclusive=True
            ),
            "outbox": await delete_where(db, OUTBOX, delivered_before(now - outbox)),
            "handovers": await self.handovers.forget(now - HANDOVER_RETENTION),
        }


# People's actions handed to the active monitor: kept a week, to look into a complaint.
HANDOVER_RETENTION = timedelta(days=7)


class _Opening:
    """What ``Store.open`` returns: ``await`` it for a Store, or ``async with`` it."""

    def __init__(self, url: str, *, migrate: bool, echo: bool) -> None:
        self._url = url
        self._migrate = migrate
        self._echo = echo
        self._store: Store | None = None

    async def _open(self) -> Store:
        parsed = normalize_url(self._url)
        db = Database(parsed, echo=self._echo)
        try:
            if self._migrate:
                await migrate.upgrade(db)
            else:
                async with db.read() as conn:
                    await conn.exec_driver_sql("SELECT 1")
        except (OSError, SQLAlchemyError) as exc:
            await db.dispose()
            raise StorageError(f"storage {safe_url(parsed)}: {_reason(exc)}") from exc
        except BaseException:
            await db.dispose()
            raise
        return Store(db)

    def __await__(self) -> Generator[Any, None, Store]:
        return self._open().__await__()

    async def __aenter__(self) -> Store:
        self._store = await self._open()
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def _reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    original = original.__cause__ or original  # asyncpg's own error behind the DBAPI wrapper
    text = str(original).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(original).__name__}: {detail}" if detail else type(original).__name__
