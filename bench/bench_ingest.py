"""How fast storage takes probe results in, and how fast the classifier's queries answer.

A round is one result per target (default 1,000 users x 2 services = 2,000 results), stored
with ``store.results.add_many`` in batches of ``BATCHES`` (500: one MQTT message; 5,000: what
the MQTT ingestion hands its sink at most) — raw rows, minute and hour rollups and the
latest-per-target row, in one transaction per batch. ``ROUNDS`` rounds one minute apart are
written (every result opens a new minute rollup row and updates an hour rollup and a latest
row: the most expensive pattern); then a redelivered batch, the trailing-hour
``recognition_rate`` per location and the trailing-24h ``misses`` per user are timed. Runs on
SQLite (a temporary file) and, when it answers, on the PostgreSQL server at 127.0.0.1:5432 (a
temporary database, dropped afterwards).
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from classifier.observation import CALL_SERVICES, ProbeResult, TargetKey
from ctiwatch.storage import Store

CUSTOMERS = 50
LOCATIONS_PER_CUSTOMER = 2
USERS_PER_LOCATION = 10
ROUNDS = 20
BATCHES = (500, 5000)
QUERIES = 200
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _targets() -> list[TargetKey]:
    return [
        TargetKey(service, f"c{c:03d}", f"c{c:03d}-l{loc}", f"u{u:02d}")
        for c in range(CUSTOMERS)
        for loc in range(LOCATIONS_PER_CUSTOMER)
        for u in range(USERS_PER_LOCATION)
        for service in CALL_SERVICES
    ]


def _round(targets: list[TargetKey], number: int) -> list[ProbeResult]:
    at = START + timedelta(minutes=number)
    return [
        ProbeResult(
            result_id=f"{number}-{i}",
            target=target,
            at=at + timedelta(milliseconds=i * 7 % 30_000),
            ok=(i + number) % 97 != 0,
            recognised=(i + number) % 13 != 0,
            latency_ms=80.0 + (i * 37 + number) % 400,
            status=200,
            evidence="HTTP 200 in 120 ms, contact 'ctiwatch test contact'",
        )
        for i, target in enumerate(targets)
    ]


async def _run(url: str, batch: int) -> dict[str, float]:
    targets = _targets()
    rounds = [_round(targets, n) for n in range(ROUNDS)]
    async with Store.open(url) as store:
        began = time.perf_counter()
        stored = 0
        results = [result for one_round in rounds for result in one_round]
        for start in range(0, len(results), batch):  # a batch may span rounds
            stored += await store.results.add_many(results[start : start + batch])
        ingest = time.perf_counter() - began
        duplicates_began = time.perf_counter()
        await store.results.add_many(results[-batch:])  # a redelivered batch: all ignored
        duplicate_batch = time.perf_counter() - duplicates_began

        now = START + timedelta(minutes=ROUNDS, seconds=17)  # not aligned: raw edges too
        locations = sorted({(t.customer, t.location) for t in targets})
        began = time.perf_counter()
        for i in range(QUERIES):
            customer, location = locations[i % len(locations)]
            await store.results.recognition_rate(customer, location, now - timedelta(hours=1), now)
        rate_query = (time.perf_counter() - began) / QUERIES
        began = time.perf_counter()
        for i in range(QUERIES):
            t = targets[(i * 2) % len(targets)]
            await store.results.misses(
                t.customer, t.location, t.user, now - timedelta(hours=24), now
            )
        misses_query = (time.perf_counter() - began) / QUERIES
    return {
        "results": float(stored),
        "results_per_s": stored / ingest,
        "duplicate_batch_ms": duplicate_batch * 1000,
        "rate_query_ms": rate_query * 1000,
        "misses_query_ms": misses_query * 1000,
    }


async def _postgres_url() -> tuple[str, str] | None:
    try:
        admin = await asyncpg.connect(
            host="127.0.0.1", port=5432, user="postgres", database="test", timeout=3
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    name = f"ctiwatch_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _print(backend: str, batch: int, figures: dict[str, float]) -> None:
    print(
        f"{backend:10s} batch {batch:>5,d}  {int(figures['results']):>7,d} results  "
        f"{figures['results_per_s']:>9,.0f} results/s  "
        f"duplicate batch: {figures['duplicate_batch_ms']:.1f} ms  "
        f"recognition_rate(1h): {figures['rate_query_ms']:.2f} ms  "
        f"misses(24h): {figures['misses_query_ms']:.2f} ms",
        flush=True,
    )


async def _main() -> None:
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    print(f"{len(_targets())} targets x {ROUNDS} rounds, {QUERIES} queries each", flush=True)
    for batch in BATCHES:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            _print("sqlite", batch, await _run(url, batch))
    for batch in BATCHES:
        postgres = await _postgres_url()
        if postgres is None:
            print("postgresql: not reachable at 127.0.0.1:5432, skipped")
            return
        name, url = postgres
        try:
            _print("postgresql", batch, await _run(url, batch))
        finally:
            await _drop(name)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
