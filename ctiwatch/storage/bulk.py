"""The bulk write path of ``store.results.add_many``: one statement per step, rollups in SQL.

Both backends do the same thing in one write transaction, from rows already deduplicated by
``result_id`` (first occurrence kept) and numbered in that order (``ord``):

1. the rows that are new (their ``result_id`` not stored yet) go into ``probe_results``, in
   ``result_id`` order;
2. exactly those rows are aggregated per (target, minute) and (target, hour) and upserted into
   the rollups, keys in sorted order, adding counts (``x = x + excluded.x``) and taking the
   larger ``latency_max``;
3. the newest of them per target (latest ``at``, ties to the later ``ord``) is upserted into
   ``target_latest`` unless that row already holds a newer result.

PostgreSQL: the rows go by binary ``COPY`` (asyncpg's ``copy_records_to_table``, on the
transaction's connection) into a per-session temporary table that every commit empties, and
one statement does all steps, data-modifying CTEs chained from the insert's ``RETURNING``.
SQLite: the rows go by ``executemany`` into a per-connection temporary table, the ones already
stored are dropped from it, and the steps run as ``INSERT ... SELECT`` from it.

The latency histogram is the one of ``records.latency_bucket``: bucket ``i`` holds answered
results with ``latency_ms <= LATENCY_BOUNDS_MS[i]`` (first bound that fits), anything else
the last bucket; failures count in ``failures`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.observation import ProbeResult
from ctiwatch.storage.records import LATENCY_BOUNDS_MS
from ctiwatch.storage.tables import HISTOGRAM_COLUMNS, ROLLUP_KEY

# (name, PostgreSQL type, SQLite type) of a column of the temporary table, in order.
_INCOMING: tuple[tuple[str, str, str], ...] = (
    ("ord", "int8", "INTEGER"),
    ("result_id", "text", "TEXT"),
    ("service", "text", "TEXT"),
    ("customer", "text", "TEXT"),
    ("location", "text", "TEXT"),
    ("user", "text", "TEXT"),
    ("at", "timestamptz", "TEXT"),
    ("ok", "bool", "INTEGER"),
    ("recognised", "bool", "INTEGER"),
    ("latency_ms", "float8", "REAL"),
    ("status", "int4", "INTEGER"),
    ("evidence", "text", "TEXT"),
    ("source", "text", "TEXT"),
    ("attempts", "int4", "INTEGER"),
    # Which source sent it (the central prober, an agent by name, call events): probe_results
    # only, so the active monitor can read back the results other workers stored (0010).
    ("source_id", "text", "TEXT"),
)
_RESULT_COLUMNS = tuple(name for name, _, _ in _INCOMING[1:])  # probe_results, minus id
_TARGET = ("service", "customer", "location", "user")
_ADDITIVE = ("count", "failures", "calls", "misses", "latency_sum", *HISTOGRAM_COLUMNS)
_TEMP = "ctiwatch_incoming"


def _q(name: str) -> str:
    return f'"{name}"'


def _names(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + _q(name) for name in names)


def _bucket_index_sql() -> str:
    """``CASE`` giving ``records.latency_bucket(latency_ms)``."""
    whens = " ".join(
        f"WHEN latency_ms <= {float(bound)!r} THEN {index}"
        for index, bound in enumerate(LATENCY_BOUNDS_MS)
        if not math.isinf(bound)
    )
    return f"CASE {whens} ELSE {len(LATENCY_BOUNDS_MS) - 1} END"


def _rollup_sql(table: str, bucket: str, source: str, *, postgres: bool) -> str:
    """``INSERT INTO <table> ... SELECT <aggregates> FROM <source> GROUP BY ... ON CONFLICT``.

    ``source`` has the columns of an incoming row plus ``hb``, the histogram bucket index."""
    if postgres:

        def where(condition: str) -> str:
            return f"count(*) FILTER (WHERE {condition})"

        latency_sum = "coalesce(sum(latency_ms) FILTER (WHERE ok), 0.0)"
        latency_max = "greatest(0.0, coalesce(max(latency_ms) FILTER (WHERE ok), 0.0))"
        larger = "greatest"
        conditions = ("NOT ok", "ok AND recognised IS NOT NULL", "ok AND recognised = false")
    else:

        def where(condition: str) -> str:
            return f"coalesce(sum({condition}), 0)"

        latency_sum = "total(CASE WHEN ok THEN latency_ms END)"
        latency_max = "max(0.0, coalesce(max(CASE WHEN ok THEN latency_ms END), 0.0))"
        larger = "max"
        conditions = ("NOT ok", "ok AND recognised IS NOT NULL", "ok AND recognised = 0")
    histogram = [where(f"ok AND hb = {index}") for index in range(len(HISTOGRAM_COLUMNS))]
    aggregates = ["count(*)", *(where(c) for c in conditions), latency_sum, latency_max]
    key = ", ".join(bucket if name == "bucket" else _q(name) for name in ROLLUP_KEY)
    positions = ", ".join(str(i + 1) for i in range(len(ROLLUP_KEY)))
    columns = (*ROLLUP_KEY, "count", "failures", "calls", "misses", "latency_sum", "latency_max")
    updates = [f"{_q(n)} = {table}.{_q(n)} + EXCLUDED.{_q(n)}" for n in _ADDITIVE]
    updates.append(f"latency_max = {larger}({table}.latency_max, EXCLUDED.latency_max)")
    return (
        f"INSERT INTO {table} ({_names(columns)}, {_names(HISTOGRAM_COLUMNS)}) "
        f"SELECT {key}, {', '.join(aggregates)}, {', '.join(histogram)} "
        f"FROM {source} WHERE true GROUP BY {positions} ORDER BY {positions} "
        f"ON CONFLICT ({_names(ROLLUP_KEY)}) DO UPDATE SET {', '.join(updates)}"
    )


def _latest_sql(source: str, *, postgres: bool) -> str:
    """Upsert the newest row per target of ``source`` (incoming columns) into target_latest."""
    columns = (
        *_TARGET,
        *(name for name in _RESULT_COLUMNS if name not in _TARGET and name != "source_id"),
    )
    newest_first = f"{_names(_TARGET)}, at DESC, ord DESC"
    if postgres:
        select = (
            f"SELECT DISTINCT ON ({_names(_TARGET)}) {_names(columns)} "
            f"FROM {source} ORDER BY {newest_first}"
        )
    else:
        select = (
            f"SELECT {_names(columns)} FROM (SELECT *, row_number() OVER ("
            f"PARTITION BY {_names(_TARGET)} ORDER BY at DESC, ord DESC) AS rn FROM {source}) "
            f"WHERE rn = 1 ORDER BY {_names(_TARGET)}"
        )
    updates = ", ".join(f"{_q(n)} = EXCLUDED.{_q(n)}" for n in columns if n not in _TARGET)
    return (
        f"INSERT INTO target_latest ({_names(columns)}) {select} "
        f"ON CONFLICT ({_names(_TARGET)}) DO UPDATE SET {updates} "
        "WHERE target_latest.at <= EXCLUDED.at"
    )


# --- PostgreSQL ----------------------------------------------------------------------------


def _postgres_statements() -> tuple[str, str]:
    columns = ", ".join(f"{_q(name)} {kind}" for name, kind, _ in _INCOMING)
    minute = "date_trunc('minute', at, 'UTC')"
    hour = "date_trunc('hour', at, 'UTC')"
    create = (
        # per session, emptied by every commit (and gone with the rollback that created it)
        f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} ({columns}) ON COMMIT DELETE ROWS"
    )
    add = (
        f"WITH fresh AS (INSERT INTO probe_results ({_names(_RESULT_COLUMNS)}) "
        f"SELECT {_names(_RESULT_COLUMNS)} FROM pg_temp.{_TEMP} ORDER BY result_id "
        "ON CONFLICT (result_id) DO NOTHING RETURNING result_id), "
        f"new AS (SELECT i.* FROM pg_temp.{_TEMP} AS i JOIN fresh USING (result_id)), "
        f"graded AS (SELECT new.*, {_bucket_index_sql()} AS hb FROM new), "
        f"minute AS ({_rollup_sql('rollups_minute', minute, 'graded', postgres=True)}), "
        f"hour AS ({_rollup_sql('rollups_hour', hour, 'graded', postgres=True)}), "
        f"latest AS ({_latest_sql('new', postgres=True)}) "
        "SELECT count(*) FROM fresh"
    )
    return create, add


POSTGRES_CREATE, POSTGRES_ADD_MANY = _postgres_statements()
_POSTGRES_COLUMNS = [name for name, _, _ in _INCOMING]


async def add_many_postgres(conn: AsyncConnection, rows: Sequence[ProbeResult]) -> int:
    """Store ``rows`` (unique ``result_id``s, in arrival order); returns how many were new.

    The rows go in with binary ``COPY`` (asyncpg's ``copy_records_to_table``) on the
    transaction's own connection, then one statement does the rest."""
    # Through SQLAlchemy first: that begins its transaction, which the COPY then joins.
    # No JIT: compiling the big statement costs more than it saves (0.8 s of 1.4 s at 20,000
    # rows, where the plan's cost passes jit_above_cost; at 5,000 it does not).
    await conn.exec_driver_sql("SET LOCAL jit = off")
    await conn.exec_driver_sql(POSTGRES_CREATE)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # asyncpg.Connection
    await driver.copy_records_to_table(
        _TEMP,
        schema_name="pg_temp",
        columns=_POSTGRES_COLUMNS,
        records=[
            (
                ord_,
                r.result_id,
                r.target.service.value,
                r.target.customer,
                r.target.location,
                r.target.user,
                r.at,
                r.ok,
                r.recognised,
                float(r.latency_ms),
                r.status,
                r.evidence,
                r.source.value,
                r.attempts,
                r.source_id,
            )
            for ord_, r in enumerate(rows)
        ],
    )
    return int((await conn.exec_driver_sql(POSTGRES_ADD_MANY)).scalar_one())


# --- SQLite --------------------------------------------------------------------------------


def _sqlite_statements() -> tuple[str, ...]:
    temp = f"temp.{_TEMP}"
    columns = ", ".join(f"{_q(name)} {kind}" for name, _, kind in _INCOMING)
    graded = f"(SELECT *, {_bucket_index_sql()} AS hb FROM {temp})"
    return (
        # per connection; emptied at the end of every call (and gone with a rollback)
        f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} ({columns})",
        f"INSERT INTO {temp} ({_names([n for n, _, _ in _INCOMING])}) "
        f"VALUES ({', '.join('?' for _ in _INCOMING)})",
        f"DELETE FROM {temp} WHERE EXISTS (SELECT 1 FROM main.probe_results AS p "
        f"WHERE p.result_id = {_TEMP}.result_id)",
        f"SELECT count(*) FROM {temp}",
        f"INSERT INTO main.probe_results ({_names(_RESULT_COLUMNS)}) "
        f"SELECT {_names(_RESULT_COLUMNS)} FROM {temp} ORDER BY result_id",
        _rollup_sql("rollups_minute", "substr(at, 1, 16) || ':00.000000'", graded, postgres=False),
        _rollup_sql("rollups_hour", "substr(at, 1, 13) || ':00:00.000000'", graded, postgres=False),
        _latest_sql(temp, postgres=False),
        f"DELETE FROM {temp}",
    )


(
    _SQLITE_CREATE,
    _SQLITE_LOAD,
    _SQLITE_DROP_KNOWN,
    _SQLITE_COUNT,
    _SQLITE_INSERT,
    _SQLITE_MINUTE,
    _SQLITE_HOUR,
    _SQLITE_LATEST,
    _SQLITE_EMPTY,
) = _sqlite_statements()


def _sqlite_time(at: datetime) -> str:
    """``UTCDateTime``'s SQLite text: naive UTC, fixed width, so text order is time order."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


async def add_many_sqlite(conn: AsyncConnection, rows: Sequence[ProbeResult]) -> int:
    """Store ``rows`` (unique ``result_id``s, in arrival order); returns how many were new.

    ``conn`` must hold SQLite's write lock (``BEGIN IMMEDIATE``), so no other writer can
    store one of these ``result_id``s between the check and the insert."""
    await conn.exec_driver_sql(_SQLITE_CREATE)
    await conn.exec_driver_sql(
        _SQLITE_LOAD,
        [
            (
                ord_,
                r.result_id,
                r.target.service.value,
                r.target.customer,
                r.target.location,
                r.target.user,
                _sqlite_time(r.at),
                r.ok,
                r.recognised,
                float(r.latency_ms),
                r.status,
                r.evidence,
                r.source.value,
                r.attempts,
                r.source_id,
            )
            for ord_, r in enumerate(rows)
        ],
    )
    await conn.exec_driver_sql(_SQLITE_DROP_KNOWN)
    new = int((await conn.exec_driver_sql(_SQLITE_COUNT)).scalar_one())
    if new:
        for statement in (_SQLITE_INSERT, _SQLITE_MINUTE, _SQLITE_HOUR, _SQLITE_LATEST):
            await conn.exec_driver_sql(statement)
    await conn.exec_driver_sql(_SQLITE_EMPTY)
    return new
