"""Probe results, their per-minute and per-hour rollups, and the latest result per target.

Rollups are maintained on write: :meth:`ResultRepository.add_many` inserts the raw rows that
are new by ``result_id`` and, in the same transaction, upserts the minute and hour rollups and
the ``target_latest`` row from exactly those rows, aggregated in SQL (the bulk path is in
:mod:`ctiwatch.storage.bulk`: ``COPY`` into a temporary table and one statement on
PostgreSQL, ``executemany`` into a temporary table on SQLite). A duplicate (an MQTT
redelivery, a replayed batch) therefore never counts twice, and there is no rollup job that
could lag behind. Upserts only add counts (``x = x + excluded.x``) so concurrent writers on
PostgreSQL need no read-modify-write.

Queries over a period use the coarsest data that is exact: whole hours from the hour rollups,
whole minutes at the edges from the minute rollups, and the sub-minute remainders from the raw
rows through the ``(customer, location[, user], at)`` indexes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, Table, and_, case, false, func, or_, select, true

from classifier.observation import CALLS, CENTRAL, ProbeResult, Service, Source, TargetKey
from ctiwatch.storage.bulk import add_many_postgres, add_many_sqlite
from ctiwatch.storage.engine import Database
from ctiwatch.storage.records import CallCounts, Resolution, Rollup
from ctiwatch.storage.tables import (
    HISTOGRAM_COLUMNS,
    PROBE_RESULTS,
    ROLLUPS_HOUR,
    ROLLUPS_MINUTE,
    TARGET_LATEST,
)

Part = tuple[Literal["raw", "minute", "hour"], datetime, datetime]


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not {value.isoformat()}")
    return value.astimezone(UTC)


def floor_minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil(at: datetime, floor: Any, step: timedelta) -> datetime:
    down: datetime = floor(at)
    return down if down == at else down + step


def plan_period(since: datetime, until: datetime) -> list[Part]:
    """Split ``[since, until)`` into hour-rollup, minute-rollup and raw parts, exactly."""
    if since >= until:
        return []
    h0 = _ceil(since, floor_hour, timedelta(hours=1))
    h1 = floor_hour(until)
    if h0 < h1:
        return [*_minute_parts(since, h0), ("hour", h0, h1), *_minute_parts(h1, until)]
    return _minute_parts(since, until)


def _minute_parts(since: datetime, until: datetime) -> list[Part]:
    if since >= until:
        return []
    m0 = _ceil(since, floor_minute, timedelta(minutes=1))
    m1 = floor_minute(until)
    if m0 < m1:
        parts: list[Part] = []
        if since < m0:
            parts.append(("raw", since, m0))
        parts.append(("minute", m0, m1))
        if m1 < until:
            parts.append(("raw", m1, until))
        return parts
    return [("raw", since, until)]


# Which agent sent a result is not stored (no column for it): read back, an agent's result
# names its kind only. The classifier never reads results back; display does.
_SOURCE_IDS = {Source.PROBE: CENTRAL, Source.CALL: CALLS, Source.AGENT: "agent"}


def _result_from(row: Row[Any]) -> ProbeResult:
    source = Source(row.source)
    return ProbeResult(
        result_id=row.result_id,
        target=TargetKey(Service(row.service), row.customer, row.location, row.user),
        at=row.at,
        ok=bool(row.ok),
        recognised=None if row.recognised is None else bool(row.recognised),
        latency_ms=float(row.latency_ms),
        status=row.status,
        evidence=row.evidence,
        source=source,
        attempts=int(row.attempts),
        source_id=_SOURCE_IDS[source],
    )


def _fed_from(row: Row[Any]) -> tuple[int, ProbeResult]:
    """A stored result as the active monitor reads it back, its source named (0010)."""
    result = _result_from(row)
    if row.source_id:
        result = replace(result, source_id=row.source_id)
    return int(row.id), result


def _rollup_from(row: Row[Any], resolution: Resolution) -> Rollup:
    return Rollup(
        bucket=row.bucket,
        resolution=resolution,
        service=Service(row.service),
        customer=row.customer,
        location=row.location,
        user=row.user,
        count=int(row._mapping["count"]),  # ``row.count`` is the tuple method
        failures=int(row.failures),
        calls=int(row.calls),
        misses=int(row.misses),
        latency_sum_ms=float(row.latency_sum),
        latency_max_ms=float(row.latency_max),
        histogram=tuple(int(getattr(row, name)) for name in HISTOGRAM_COLUMNS),
    )


class ResultRepository:
    """``store.results``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_many(self, results: Sequence[ProbeResult]) -> int:
        """Store results (duplicates by ``result_id`` ignored, within the batch the first
        one kept); returns how many were new. Raw rows, minute and hour rollups and the
        latest row per target are written from exactly the new rows, in one transaction
        (see :mod:`ctiwatch.storage.bulk`)."""
        unique: dict[str, ProbeResult] = {}
        for result in results:
            if result.result_id not in unique:
                _aware("at", result.at)
                unique[result.result_id] = result
        if not unique:
            return 0
        rows = list(unique.values())
        async with self._db.write() as conn:
            if self._db.is_sqlite:
                return await add_many_sqlite(conn, rows)
            return await add_many_postgres(conn, rows)

    # --- reads -------------------------------------------------------------------------------

    async def newest_id(self) -> int:
        """The highest row id stored (0 when none)."""
        async with self._db.read() as conn:
            return int((await conn.execute(select(func.max(PROBE_RESULTS.c.id)))).scalar() or 0)

    async def stored_after(
        self,
        after: int,
        *,
        missing: Sequence[int] = (),
        since: datetime | None = None,
        limit: int = 5_000,
    ) -> list[tuple[int, ProbeResult]]:
        """Rows with an id above ``after`` (and those of ``missing``, ids below it not seen
        yet), oldest id first, with their id: what the active monitor reads of the results
        the other workers stored. ``since``: only results taken from then on."""
        p = PROBE_RESULTS.c
        which = p.id > after
        if missing:
            which = or_(which, p.id.in_(list(missing)))
        query = select(PROBE_RESULTS).where(which).order_by(p.id).limit(limit)
        if since is not None:
            query = query.where(p.at >= _aware("since", since))
        async with self._db.read() as conn:
            return [_fed_from(row) for row in await conn.execute(query)]

    async def latest(
        self, customer: str | None = None, location: str | None = None
    ) -> list[ProbeResult]:
        """The newest result of every target (optionally of one customer / location)."""
        query = select(TARGET_LATEST)
        if customer is not None:
            query = query.where(TARGET_LATEST.c.customer == customer)
        if location is not None:
            query = query.where(TARGET_LATEST.c.location == location)
        query = query.order_by(
            TARGET_LATEST.c.customer,
            TARGET_LATEST.c.location,
            TARGET_LATEST.c.user,
            TARGET_LATEST.c.service,
        )
        async with self._db.read() as conn:
            return [_result_from(row) for row in await conn.execute(query)]

    async def latest_for(self, target: TargetKey) -> ProbeResult | None:
        query = select(TARGET_LATEST).where(
            TARGET_LATEST.c.service == target.service.value,
            TARGET_LATEST.c.customer == target.customer,
            TARGET_LATEST.c.location == target.location,
            TARGET_LATEST.c.user == target.user,
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _result_from(row)

    async def history(
        self, target: TargetKey, since: datetime, until: datetime, limit: int = 1000
    ) -> list[ProbeResult]:
        """Raw results of one target in ``[since, until)``, newest first."""
        t = PROBE_RESULTS.c
        query = (
            select(PROBE_RESULTS)
            .where(
                t.customer == target.customer,
                t.location == target.location,
                t.user == target.user,
                t.service == target.service.value,
                t.at >= _aware("since", since),
                t.at < _aware("until", until),
            )
            .order_by(t.at.desc(), t.id.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_result_from(row) for row in await conn.execute(query)]

    async def recognition_rate(
        self,
        customer: str,
        location: str,
        since: datetime,
        until: datetime,
        service: Service | None = None,
    ) -> CallCounts:
        """Calls and misses of a whole location in ``[since, until)``; ``.rate`` is the
        recognition rate (``None`` without calls)."""
        return await self.call_counts(customer, location, None, since, until, service)

    async def misses(
        self,
        customer: str,
        location: str,
        user: str,
        since: datetime,
        until: datetime,
        service: Service | None = None,
    ) -> int:
        """Unrecognised calls of one user in ``[since, until)``."""
        counts = await self.call_counts(customer, location, user, since, until, service)
        return counts.misses

    async def call_counts(
        self,
        customer: str,
        location: str,
        user: str | None,
        since: datetime,
        until: datetime,
        service: Service | None = None,
    ) -> CallCounts:
        since, until = _aware("since", since), _aware("until", until)
        calls = misses = 0
        async with self._db.read() as conn:
            for kind, start, end in plan_period(since, until):
                query = _counts_query(kind, customer, location, user, service, start, end)
                row = (await conn.execute(query)).one()
                calls += int(row[0] or 0)
                misses += int(row[1] or 0)
        return CallCounts(calls=calls, misses=misses)

    async def rollups(
        self,
        resolution: Resolution,
        since: datetime,
        until: datetime,
        *,
        customer: str | None = None,
        location: str | None = None,
        user: str | None = None,
        service: Service | None = None,
    ) -> list[Rollup]:
        """Rollup rows with ``since <= bucket < until``, oldest first (for graphs and the
        status page; merge several with ``records.combine_rollups``)."""
        table = ROLLUPS_MINUTE if resolution == "minute" else ROLLUPS_HOUR
        c = table.c
        query = select(table).where(
            c.bucket >= _aware("since", since), c.bucket < _aware("until", until)
        )
        for column, value in (
            (c.customer, customer),
            (c.location, location),
            (c.user, user),
            (c.service, None if service is None else service.value),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(c.bucket, c.customer, c.location, c.user, c.service)
        async with self._db.read() as conn:
            return [_rollup_from(row, resolution) for row in await conn.execute(query)]

    @asynccontextmanager
    async def live_rows(
        self, since: datetime, until: datetime, chunk: int = 500
    ) -> AsyncIterator[tuple[AsyncIterator[list[Any]], AsyncIterator[list[Any]]]]:
        """For the read model's first build, streamed so that no step holds the event loop
        long: the minute rollups with ``since <= bucket < until`` as lists of at most
        ``chunk`` tuples ``(customer, location, user, service, bucket, count, failures,
        calls, misses, latency_sum, latency_max, h00..h15)``, and the latest result's time of
        every target as tuples ``(customer, location, user, service, at)``.

        Both queries have started (their snapshot taken) when the block is entered: a batch
        stored after that is in neither."""
        c = ROLLUPS_MINUTE.c
        minutes = select(
            c.customer,
            c.location,
            c.user,
            c.service,
            c.bucket,
            c["count"],
            c.failures,
            c.calls,
            c.misses,
            c.latency_sum,
            c.latency_max,
            *(c[name] for name in HISTOGRAM_COLUMNS),
        ).where(c.bucket >= _aware("since", since), c.bucket < _aware("until", until))
        t = TARGET_LATEST.c
        latest = select(t.customer, t.location, t.user, t.service, t.at)
        async with self._db.read() as first, self._db.read() as second:
            rows = await first.stream(minutes)
            times = await second.stream(latest)

            async def chunks(result: Any) -> AsyncIterator[list[Any]]:
                async for part in result.partitions(chunk):
                    yield [tuple(row) for row in part]

            yield chunks(rows), chunks(times)


def _counts_query(
    kind: Literal["raw", "minute", "hour"],
    customer: str,
    location: str,
    user: str | None,
    service: Service | None,
    start: datetime,
    end: datetime,
) -> Any:
    if kind == "raw":
        c = PROBE_RESULTS.c
        answered = c.ok == true()
        calls: ColumnElement[Any] = func.sum(
            case((and_(answered, c.recognised.is_not(None)), 1), else_=0)
        )
        misses: ColumnElement[Any] = func.sum(
            case((and_(answered, c.recognised == false()), 1), else_=0)
        )
        time_column = c.at
    else:
        c = (ROLLUPS_MINUTE if kind == "minute" else ROLLUPS_HOUR).c
        calls, misses = func.sum(c.calls), func.sum(c.misses)
        time_column = c.bucket
    query = select(calls, misses).where(
        c.customer == customer, c.location == location, time_column >= start, time_column < end
    )
    if user is not None:
        query = query.where(c.user == user)
    if service is not None:
        query = query.where(c.service == service.value)
    return query


async def delete_older(
    db: Database,
    table: Table,
    time_column: str,
    cutoff: datetime,
    *,
    inclusive: bool = False,
    batch: int = 5000,
) -> int:
    """Delete rows with ``time_column < cutoff`` (``<=`` if ``inclusive``); see
    ``delete_where``."""
    column = table.c[time_column]
    return await delete_where(
        db, table, column <= cutoff if inclusive else column < cutoff, batch=batch
    )


async def delete_where(
    db: Database, table: Table, condition: ColumnElement[bool], *, batch: int = 5000
) -> int:
    """Delete the rows matching ``condition`` in batches, each its own short transaction so
    SQLite writers are not held up for long. The condition is checked again on the rows
    themselves, so a row that changed since the batch was chosen is left alone."""
    key = table.c.id
    deleted = 0
    while True:
        doomed = select(key).where(condition).limit(batch)
        async with db.write() as conn:
            result = await conn.execute(table.delete().where(key.in_(doomed), condition))
        deleted += result.rowcount
        if result.rowcount < batch:
            return deleted
