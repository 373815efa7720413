"""Opening a store migrates it (also from an older revision); migrations match the models;
URLs and bad databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ctiwatch.cli import main
from ctiwatch.config import ConfigError
from ctiwatch.storage import OutboxMessage, StorageError, Store, normalize_url
from ctiwatch.storage.migrate import head_revision, upgrade
from ctiwatch.storage.tables import MAINTENANCE, metadata

# The newest migration: a new one changes this line.
HEAD = "0012"

TABLES = {
    "agents",
    "alembic_version",
    "api_tokens",
    "audit_log",
    "counters",
    "dead_letters",
    "held_messages",
    "handovers",
    "leader",
    "customer_links",
    "incident_timeline",
    "incidents",
    "maintenance_revisions",
    "maintenance_windows",
    "outbox",
    "probe_results",
    "rollups_hour",
    "rollups_minute",
    "sessions",
    "target_latest",
    "users",
    "webhook_replays",
}


def _schema_report(connection: Connection) -> tuple[set[str], list[object]]:
    tables = set(inspect(connection).get_table_names())
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return tables, compare_metadata(context, metadata)


async def test_opening_twice_and_upgrading_again_leaves_one_schema_at_head(
    storage_url: str,
) -> None:
    async with Store.open(storage_url) as store:
        assert await store.revision() == head_revision() == HEAD
    async with Store.open(storage_url) as store:
        assert await store.migrate() == HEAD
        assert await store.migrate() == HEAD
        assert await store.revision() == HEAD
        async with store._db.read() as conn:
            tables, differences = await conn.run_sync(_schema_report)
    assert tables == TABLES
    assert differences == []


def _outbox_indexes(connection: Connection) -> dict[str, list[str | None]]:
    return {i["name"] or "": i["column_names"] for i in inspect(connection).get_indexes("outbox")}


async def test_a_0001_database_with_messages_upgrades_to_head_and_stays_there(
    storage_url: str,
) -> None:
    sent_at = datetime(2026, 12, 4, 14, 0, 5, tzinfo=UTC)
    async with Store.open(storage_url, migrate=False) as old:
        assert await upgrade(old._db, "0001") == "0001"
        async with old._db.read() as conn:
            assert "ix_outbox_provider_id" not in await conn.run_sync(_outbox_indexes)
        await old.outbox.enqueue(
            OutboxMessage(
                idempotency_key="1:opened:sms",
                channel="sms",
                recipient="+31612345678",
                kind="opened",
                body="P1 #1 acme: Click2Dial unavailable at acme-ams",
                created_at=sent_at - timedelta(seconds=5),
                status="sent",
                provider_id="SM0001",
                sent_at=sent_at,
            )
        )

    async with Store.open(storage_url) as store:
        assert await store.revision() == HEAD
        assert await store.migrate() == HEAD
        assert await store.migrate() == HEAD
        found = await store.outbox.by_provider_id("SM0001")
        async with store._db.read() as conn:
            indexes = await conn.run_sync(_outbox_indexes)
            tables, differences = await conn.run_sync(_schema_report)
    assert found is not None
    assert (found.idempotency_key, found.status, found.sent_at) == ("1:opened:sms", "sent", sent_at)
    assert indexes["ix_outbox_provider_id"] == ["provider_id"]
    assert tables == TABLES
    assert differences == []


# The maintenance window table as revision 0002 had it (later columns do not exist yet).
WINDOWS_0002 = sa.table(
    "maintenance_windows",
    *(
        sa.column(name, MAINTENANCE.c[name].type)
        for name in (
            "starts_at",
            "ends_at",
            "services",
            "customers",
            "locations",
            "reason",
            "created_by",
            "created_at",
        )
    ),
)


async def test_a_0002_window_upgrades_to_0003_not_cancelled_and_can_be_cancelled_keeping_it(
    storage_url: str,
) -> None:
    start = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    async with Store.open(storage_url, migrate=False) as old:
        assert await upgrade(old._db, "0002") == "0002"
        async with old._db.write() as conn:
            await conn.execute(
                WINDOWS_0002.insert().values(
                    starts_at=start,
                    ends_at=start + timedelta(hours=2),
                    services=["crm"],
                    customers=[],
                    locations=[],
                    reason="CRM upgrade",
                    created_by="Sanne",
                    created_at=start - timedelta(days=1),
                )
            )
    async with Store.open(storage_url) as store:
        assert await store.revision() == HEAD
        (window,) = await store.maintenance.list()
        assert (window.id, window.services, window.cancelled_by, window.cancelled_at) == (
            1,
            ("crm",),
            None,
            None,
        )
        assert (window.emergency, window.justification, window.revision) == (False, "", 1)
        assert window.spans == ((start, start + timedelta(hours=2)),)
        cancelled = await store.maintenance.cancel(1, "Piet", start - timedelta(hours=1))
        again = await store.maintenance.cancel(1, "Ann", start)
        assert await store.maintenance.active_at(start + timedelta(minutes=1)) == []
    assert cancelled is not None and again == cancelled
    assert (cancelled.cancelled_by, cancelled.cancelled_at, cancelled.reason) == (
        "Piet",
        start - timedelta(hours=1),
        "CRM upgrade",
    )


async def test_open_without_migrate_leaves_an_empty_database_at_no_revision(
    storage_url: str,
) -> None:
    async with Store.open(storage_url, migrate=False) as store:
        assert await store.revision() is None


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///data/ctiwatch.db", "sqlite+aiosqlite:///data/ctiwatch.db"),
        ("sqlite+aiosqlite:////var/lib/ctiwatch.db", "sqlite+aiosqlite:////var/lib/ctiwatch.db"),
        (
            "postgresql://ctiwatch@db:5432/ctiwatch",
            "postgresql+asyncpg://ctiwatch@db:5432/ctiwatch",
        ),
        ("postgres://ctiwatch@db/ctiwatch", "postgresql+asyncpg://ctiwatch@db/ctiwatch"),
        ("postgresql+asyncpg://u:secret@db/x", "postgresql+asyncpg://u:***@db/x"),
    ],
)
def test_storage_url_gets_the_async_driver(given: str, used: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=True) == used


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "postgresql+psycopg2://u@h/db",
        "nonsense",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_unsupported_storage_url_is_a_config_error_naming_the_field(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_url(url)
    assert caught.value.errors[0].startswith("storage.url: ")


async def test_unreachable_postgres_is_a_storage_error_without_password() -> None:
    with pytest.raises(StorageError) as caught:
        await Store.open("postgresql://ctiwatch:hunter2@127.0.0.1:1/ctiwatch")
    message = str(caught.value)
    assert message.startswith("storage postgresql+asyncpg://ctiwatch:***@127.0.0.1:1/ctiwatch: ")
    assert "hunter2" not in message


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(store: Store) -> None:
    async with store._db.read() as conn:
        settings = [
            (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        ]
    assert settings == ["wal", 10_000, 1, 1]


def test_db_upgrade_command_migrates_the_configured_sqlite_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "state" / "ctiwatch.db"
    config = tmp_path / "ctiwatch.yaml"
    config.write_text(f"storage:\n  url: sqlite:///{database}\n", encoding="utf-8")

    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert main(["db", "upgrade", "--config", str(config)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == [f"sqlite+aiosqlite:///{database}: schema at revision {HEAD} (newest)"] * 2
    assert database.exists()


def test_db_upgrade_command_reports_an_unusable_url_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctiwatch.yaml"
    config.write_text("storage:\n  url: mysql://u@h/db\n", encoding="utf-8")

    assert main(["db", "upgrade", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("error: storage.url: unsupported database 'mysql'")
