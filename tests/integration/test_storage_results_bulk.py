"""The bulk ``add_many`` (rollups in SQL) agrees with a plain-Python model of its semantics.

The model is the former Python implementation: first occurrence of a ``result_id`` kept within
a batch, ids stored before ignored, rollups aggregated per UTC minute / hour from exactly the
new results (histogram by ``records.latency_bucket``, failures outside latency statistics),
and the newest result per target (ties to the later one) kept unless a newer one is stored.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest

from classifier.observation import CALL_SERVICES, ProbeResult, Source, TargetKey
from ctiwatch.storage import Rollup, Store
from ctiwatch.storage.records import LATENCY_BOUNDS_MS, latency_bucket

T0 = datetime(2026, 3, 2, 8, 50, tzinfo=UTC)
STORED_SOURCE_IDS = {Source.PROBE: "central", Source.AGENT: "agent", Source.CALL: "calls"}
KOLKATA = timezone(timedelta(hours=5, minutes=30))  # local hours are not UTC hours
TARGETS = [
    TargetKey(service, customer, f"{customer}-ams", user)
    for service in CALL_SERVICES
    for customer in ("acme", "zeta")
    for user in ("u1", "u2")
]
# Every bound exactly, just above it, and beyond the last finite one.
LATENCIES = (0.0, 3.5, 5.0, 5.5, 10.0, 50.0, 50.5, 120.0, 300.0, 750.0, 10000.0, 10000.5, 25e3)

Key = tuple[str, str, str, datetime, str]


@dataclass
class ModelRollup:
    count: int = 0
    failures: int = 0
    calls: int = 0
    misses: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_MS))


@dataclass
class Model:
    stored: dict[str, ProbeResult] = field(default_factory=dict)
    minute: dict[Key, ModelRollup] = field(default_factory=dict)
    hour: dict[Key, ModelRollup] = field(default_factory=dict)
    latest: dict[TargetKey, ProbeResult] = field(default_factory=dict)

    def add_many(self, results: list[ProbeResult]) -> int:
        unique: dict[str, ProbeResult] = {}
        for r in results:
            unique.setdefault(r.result_id, r)
        fresh = [r for r in unique.values() if r.result_id not in self.stored]
        self.stored.update((r.result_id, r) for r in fresh)
        newest: dict[TargetKey, ProbeResult] = {}
        for r in fresh:
            t = r.target
            at = r.at.astimezone(UTC)
            for rollups, bucket in (
                (self.minute, at.replace(second=0, microsecond=0)),
                (self.hour, at.replace(minute=0, second=0, microsecond=0)),
            ):
                agg = rollups.setdefault(
                    (t.customer, t.location, t.user, bucket, t.service.value), ModelRollup()
                )
                agg.count += 1
                if not r.ok:
                    agg.failures += 1
                    continue
                if r.recognised is not None:
                    agg.calls += 1
                    agg.misses += r.recognised is False
                agg.latency_sum += r.latency_ms
                agg.latency_max = max(agg.latency_max, r.latency_ms)
                agg.histogram[latency_bucket(r.latency_ms)] += 1
            if t not in newest or r.at >= newest[t].at:
                newest[t] = r
        for t, r in newest.items():
            if t not in self.latest or self.latest[t].at <= r.at:
                self.latest[t] = r
        return len(fresh)


def _as_model(rollups: list[Rollup]) -> dict[Key, ModelRollup]:
    return {
        (r.customer, r.location, r.user, r.bucket, r.service.value): ModelRollup(
            r.count,
            r.failures,
            r.calls,
            r.misses,
            r.latency_sum_ms,
            r.latency_max_ms,
            list(r.histogram),
        )
        for r in rollups
    }


def _batches(seed: int) -> list[list[ProbeResult]]:
    """Eight batches over two and a half hours with duplicates within and across batches
    (same id, different content: the first stored wins) and equal times for one target."""
    rng = random.Random(seed)
    made: list[ProbeResult] = []
    batches: list[list[ProbeResult]] = []
    for number in range(8):
        batch: list[ProbeResult] = []
        for _ in range(rng.randrange(40, 120)):
            roll = rng.random()
            if made and roll < 0.15:  # an earlier result again (redelivery)
                batch.append(rng.choice(made))
                continue
            result_id = rng.choice(made).result_id if made and roll < 0.2 else f"r{len(made)}"
            at = T0 + timedelta(seconds=rng.randrange(0, 9000), microseconds=rng.randrange(3))
            ok = rng.random() > 0.2
            source = rng.choice(tuple(Source))
            made.append(
                ProbeResult(
                    result_id=result_id,  # a reused id with other content: a conflict
                    target=rng.choice(TARGETS),
                    at=at.astimezone(KOLKATA) if rng.random() < 0.3 else at,
                    ok=ok,
                    recognised=rng.choice((True, False, None)),
                    latency_ms=rng.choice(LATENCIES),
                    status=200 if ok else rng.choice((None, 503)),
                    evidence=f"batch {number}",
                    source=source,
                    attempts=rng.randrange(1, 4),
                    # the agent's id is not stored: an agent's result reads back as "agent"
                    source_id=STORED_SOURCE_IDS[source],
                )
            )
            batch.append(made[-1])
        if number % 3 == 0 and batch:
            batch.append(batch[0])  # repeated inside the batch
        batches.append(batch)
    # Same target, same instant, in one batch: the later one is the latest.
    tie = T0 + timedelta(hours=3)
    batches.append(
        [
            ProbeResult("tie-a", TARGETS[0], tie, True, True, 10.0, 200, "first"),
            ProbeResult("tie-b", TARGETS[0], tie, False, None, 0.0, 503, "second"),
        ]
    )
    return batches


async def test_bulk_add_many_agrees_with_the_python_model_of_its_semantics(store: Store) -> None:
    model = Model()
    for batch in _batches(seed=20260302):
        assert await store.results.add_many(batch) == model.add_many(batch)
        assert await store.results.add_many(batch) == 0  # replayed whole: nothing new

    since, until = T0 - timedelta(hours=1), T0 + timedelta(hours=5)
    minute = _as_model(await store.results.rollups("minute", since, until))
    hour = _as_model(await store.results.rollups("hour", since, until))
    assert minute == model.minute
    assert hour == model.hour
    assert len(model.minute) > 100 and len(model.hour) == 4 * len(TARGETS)
    assert sum(r.histogram[0] for r in hour.values()) > 0  # the boundaries were exercised
    assert sum(r.histogram[-1] for r in hour.values()) > 0

    latest = await store.results.latest()
    assert {r.target: r for r in latest} == model.latest
    assert model.latest[TARGETS[0]].result_id == "tie-b"
    stored = {
        r.result_id: r
        for target in TARGETS
        for r in await store.results.history(target, since, until, limit=10_000)
    }
    assert stored == model.stored  # the first version of every id, every field


async def test_a_batch_that_fails_half_way_stores_nothing_and_the_store_goes_on(
    store: Store,
) -> None:
    good = ProbeResult("good", TARGETS[0], T0, True, True, 120.0, 200, "HTTP 200")
    bad = ProbeResult("bad", TARGETS[1], T0, True, True, 120.0, 2**70, "status too large")
    with pytest.raises(OverflowError):
        await store.results.add_many([good, bad])

    since, until = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    assert await store.results.history(TARGETS[0], since, until) == []
    assert await store.results.rollups("minute", since, until) == []
    assert await store.results.rollups("hour", since, until) == []
    assert await store.results.latest() == []
    # The pooled connection (and its temporary table) serves the next batch normally.
    assert await store.results.add_many([good]) == 1
    assert await store.results.add_many([good]) == 0
    assert [r.count for r in await store.results.rollups("hour", since, until)] == [1]
    assert await store.results.latest() == [good]
