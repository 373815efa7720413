"""Engines: SQLite (aiosqlite, WAL) by default, PostgreSQL (asyncpg) by URL.

Transactions are explicit: reads use :meth:`Database.read`, writes :meth:`Database.write`.
On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so a read-then-write unit of
work never fails half-way with "database is locked" (a deferred transaction cannot upgrade its
read snapshot once another connection has committed), and writers of one process queue on an
``asyncio.Lock`` instead of spinning in SQLite's busy handler; other processes still wait up
to the busy timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, event, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ctiwatch.config import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "ctiwatch_sqlite_begin"


class StorageError(Exception):
    """The database cannot be used (unreachable, wrong schema, ...)."""


def normalize_url(url: str) -> URL:
    """Parse a storage URL and pick the async driver ctiwatch uses for it.

    ``sqlite:///x.db`` and ``sqlite+aiosqlite:///x.db`` use aiosqlite; ``postgresql://``,
    ``postgres://`` and ``postgresql+asyncpg://`` use asyncpg. Anything else is a
    :class:`ConfigError` naming ``storage.url``.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError([f"storage.url: not a database URL: {url!r}"]) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        if parsed.database in (None, "", ":memory:"):
            # One shared connection cannot hold a write transaction and serve reads beside it.
            raise ConfigError(
                ["storage.url: SQLite needs a file (sqlite+aiosqlite:///path/ctiwatch.db)"]
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        [
            f"storage.url: unsupported database {parsed.drivername!r} "
            "(use sqlite+aiosqlite:///path or postgresql://user@host/db)"
        ]
    )


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class Database:
    """One engine and how to run transactions on it. Owned by a ``Store``."""

    def __init__(self, url: URL, *, echo: bool = False) -> None:
        self.url = url
        self.dialect = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, echo=echo)
        else:
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_pre_ping=True,
                connect_args={"server_settings": {"application_name": "ctiwatch"}},
            )
        self._write_engine = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        # Only SQLite needs writers of one process to queue: it has one writer at a time.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._writers: set[asyncio.Task[Any]] = set()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        A task may hold one at a time: a second one from inside the first would not be part
        of it (and on SQLite would wait for it forever), so it is an error on both backends.
        """
        task = asyncio.current_task()
        if task is not None and task in self._writers:
            raise StorageError(
                "a store write inside store.transaction(): use the transaction's tx.* methods"
            )
        if task is not None:
            self._writers.add(task)
        try:
            if self._write_lock is None:
                async with self._write_engine.begin() as connection:
                    yield connection
            else:
                async with self._write_lock, self._write_engine.begin() as connection:
                    yield connection
        finally:
            if task is not None:
                self._writers.discard(task)

    async def dispose(self) -> None:
        await self.engine.dispose()

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``_do_update``."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    def greatest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.is_sqlite:
            return func.max(left, right)  # two arguments: SQLite's scalar max
        return func.greatest(left, right)


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (see _on_begin); the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
