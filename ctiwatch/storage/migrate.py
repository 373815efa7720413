"""Alembic, run from code: no ``alembic.ini``, the migrations ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ctiwatch.storage.engine import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: serialises concurrent upgrades (several workers starting) on PostgreSQL.
_PG_MIGRATION_LOCK = 0x637469_7761746368 & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> str | None:
    command.upgrade(alembic_config(connection), revision)
    return _current(connection)


async def upgrade(db: Database, revision: str = "head") -> str | None:
    """Migrate to ``revision`` (default: the newest) in one transaction; returns the revision."""
    async with db.write() as connection:
        if not db.is_sqlite:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        return await connection.run_sync(_upgrade, revision)


async def current_revision(db: Database) -> str | None:
    async with db.read() as connection:
        return await connection.run_sync(_current)
