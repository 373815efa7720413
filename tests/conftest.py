"""Shared fixtures. Others may add theirs below; keep each one documented.

Storage fixtures
----------------
``backend``              "sqlite" or "postgres" (parametrized; postgres is marked ``postgres``).
                         Pin one with ``@pytest.mark.parametrize("backend", ["sqlite"])``.
``storage_url``          a fresh, empty database of that backend (a SQLite file in ``tmp_path``,
                         or a new PostgreSQL database dropped afterwards)
``store``                an open, migrated :class:`ctiwatch.storage.Store` on ``storage_url``
``pg_database_factory``  ``await factory()`` gives the URL of a new PostgreSQL database
``require_postgres``     skips (or, under CI, fails) when PostgreSQL is not reachable

Under CI (``CI=1``, ``true`` or ``yes``) a missing service fails instead of skipping: every such
check goes through ``ci.unavailable`` (``tests/ci.py``).

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth; administrative connections go to
database ``test`` (or ``postgres``). Override with ``CTIWATCH_TEST_PG`` (host:port).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from ci import unavailable

from ctiwatch.storage import Store

PG_HOSTPORT = os.environ.get("CTIWATCH_TEST_PG", "127.0.0.1:5432")
PG_HOST, _, _PG_PORT = PG_HOSTPORT.partition(":")
PG_PORT = int(_PG_PORT or "5432")
PG_USER = "postgres"
PG_ADMIN_DATABASES = ("test", "postgres")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


async def _admin_connection() -> asyncpg.Connection:
    """A connection to an administrative database, or ``ConnectionError``."""
    last: Exception | None = None
    for database in PG_ADMIN_DATABASES:
        try:
            return await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            last = exc
    raise ConnectionError(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {last}")


async def _admin_or_skip() -> asyncpg.Connection:
    """Like ``_admin_connection``, but skips the test (fails it under CI)."""
    try:
        return await _admin_connection()
    except ConnectionError as exc:
        unavailable(str(exc))


@pytest.fixture
async def require_postgres() -> None:
    """Skip (fail under CI) when PostgreSQL is not reachable."""
    conn = await _admin_or_skip()
    await conn.close()


@pytest.fixture
async def pg_database_factory() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """``url = await pg_database_factory()``: a new empty database, dropped after the test.
    Creating one skips the test (fails it under CI) when PostgreSQL is down."""
    created: list[str] = []

    async def create() -> str:
        name = f"ctiwatch_test_{uuid.uuid4().hex}"
        conn = await _admin_or_skip()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(name)
        return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    yield create

    if created:
        conn = await _admin_connection()
        try:
            for name in created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def storage_url(
    backend: str, tmp_path: Path, pg_database_factory: Callable[[], Awaitable[str]]
) -> str:
    """A fresh, empty database for ``backend``."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ctiwatch.db'}"
    return await pg_database_factory()


@pytest.fixture
async def store(storage_url: str) -> AsyncIterator[Store]:
    """An open, migrated store on a fresh database (both backends)."""
    async with Store.open(storage_url) as opened:
        yield opened
