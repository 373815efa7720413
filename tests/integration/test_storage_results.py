"""Probe results: batched insert with duplicates, rollups, period queries, latest, retention."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.storage import Store
from ctiwatch.storage.records import combine_rollups
from ctiwatch.storage.results import _counts_query, plan_period

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Amsterdam
CRM_U1 = TargetKey(Service.CRM, "acme", "acme-ams", "u1")
CRM_U2 = TargetKey(Service.CRM, "acme", "acme-ams", "u2")
C2D_U1 = TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", "u1")
OTHER = TargetKey(Service.CRM, "acme", "acme-rtm", "u1")

_ids = itertools.count(1)


def result(
    target: TargetKey,
    at: datetime,
    *,
    ok: bool = True,
    recognised: bool | None = True,
    latency_ms: float = 120.0,
    result_id: str | None = None,
) -> ProbeResult:
    return ProbeResult(
        result_id=result_id or f"r{next(_ids)}",
        target=target,
        at=at,
        ok=ok,
        recognised=recognised if ok else None,
        latency_ms=latency_ms,
        status=200 if ok else 503,
        evidence="HTTP 200 contact found" if ok else "HTTP 503",
        source=Source.PROBE,
        attempts=1 if ok else 3,
    )


async def test_add_many_stores_each_result_id_once_and_returns_only_the_new(store: Store) -> None:
    first = [result(CRM_U1, T0 + timedelta(minutes=i), result_id=f"a{i}") for i in range(3)]
    assert await store.results.add_many(first) == 3

    again = [
        first[0],
        result(CRM_U1, T0 + timedelta(minutes=5), result_id="a3"),
        first[2],
        result(CRM_U1, T0 + timedelta(minutes=6), result_id="a3"),  # repeated inside the batch
    ]
    assert await store.results.add_many(again) == 1
    assert await store.results.add_many([]) == 0

    history = await store.results.history(CRM_U1, T0, T0 + timedelta(hours=1))
    assert [r.result_id for r in history] == ["a3", "a2", "a1", "a0"]
    assert history[0] == again[1]  # round trip: every field, aware UTC datetime
    assert history[0].at.tzinfo is UTC
    # Duplicates never reach the rollups either.
    (hour,) = await store.results.rollups("hour", T0, T0 + timedelta(hours=1))
    assert hour.count == 4


async def test_rollups_add_up_counts_and_latency_per_minute_and_hour(store: Store) -> None:
    await store.results.add_many(
        [
            result(CRM_U1, T0 + timedelta(seconds=5), latency_ms=40.0),
            result(CRM_U1, T0 + timedelta(seconds=35), recognised=False, latency_ms=180.0),
            result(CRM_U1, T0 + timedelta(seconds=50), ok=False, latency_ms=10000.0),
            result(CRM_U1, T0 + timedelta(minutes=1, seconds=1), latency_ms=90.0),
        ]
    )
    # A second batch into the same minute is an upsert that adds to the row.
    await store.results.add_many([result(CRM_U1, T0 + timedelta(seconds=59), latency_ms=450.0)])

    minutes = await store.results.rollups("minute", T0, T0 + timedelta(hours=1))
    assert [(m.bucket, m.count, m.failures, m.calls, m.misses) for m in minutes] == [
        (T0, 4, 1, 3, 1),
        (T0 + timedelta(minutes=1), 1, 0, 1, 0),
    ]
    first = minutes[0]
    assert first.answered == 3
    assert first.latency_sum_ms == 670.0
    assert first.latency_max_ms == 450.0
    # Buckets: <=50 ms: 40; (100, 200]: 180; (300, 500]: 450. The failure is not a latency.
    assert first.histogram == (0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert first.latency_p50_ms == pytest.approx(150.0)  # rank 1.5: halfway through (100, 200]
    # rank 2.85 lies in (300, 500], whose top is capped at the observed max: 300 + 150 * 0.85
    assert first.latency_p95_ms == pytest.approx(427.5)
    assert first.latency_mean_ms == pytest.approx(670.0 / 3)

    (hour,) = await store.results.rollups("hour", T0, T0 + timedelta(hours=1))
    assert (hour.bucket, hour.count, hour.failures, hour.calls, hour.misses) == (T0, 5, 1, 4, 1)
    assert hour.histogram == tuple(
        a + b for a, b in zip(minutes[0].histogram, minutes[1].histogram, strict=True)
    )
    combined = combine_rollups(minutes)
    assert combined is not None
    assert combined.histogram == hour.histogram
    assert combined.latency_max_ms == hour.latency_max_ms == 450.0


async def test_rollups_filter_by_target(store: Store) -> None:
    await store.results.add_many(
        [result(t, T0 + timedelta(seconds=10)) for t in (CRM_U1, CRM_U2, C2D_U1, OTHER)]
    )
    until = T0 + timedelta(hours=1)
    assert len(await store.results.rollups("minute", T0, until)) == 4
    assert len(await store.results.rollups("minute", T0, until, location="acme-ams")) == 3
    only = await store.results.rollups(
        "minute", T0, until, location="acme-ams", user="u1", service=Service.CLICK2DIAL
    )
    assert [(r.service, r.user) for r in only] == [(Service.CLICK2DIAL, "u1")]


def test_a_period_is_split_into_raw_minute_and_hour_parts_exactly() -> None:
    since = datetime(2026, 3, 2, 8, 58, 30, tzinfo=UTC)
    until = datetime(2026, 3, 2, 11, 1, 15, tzinfo=UTC)
    assert plan_period(since, until) == [
        ("raw", since, datetime(2026, 3, 2, 8, 59, tzinfo=UTC)),
        ("minute", datetime(2026, 3, 2, 8, 59, tzinfo=UTC), datetime(2026, 3, 2, 9, tzinfo=UTC)),
        ("hour", datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 2, 11, tzinfo=UTC)),
        ("minute", datetime(2026, 3, 2, 11, tzinfo=UTC), datetime(2026, 3, 2, 11, 1, tzinfo=UTC)),
        ("raw", datetime(2026, 3, 2, 11, 1, tzinfo=UTC), until),
    ]
    aligned = plan_period(T0, T0 + timedelta(hours=24))
    assert aligned == [("hour", T0, T0 + timedelta(hours=24))]
    assert plan_period(T0, T0) == []


def _traffic() -> list[ProbeResult]:
    """Three hours of calls every 40 s for two users at one location (plus noise elsewhere):
    every 7th call unrecognised, every 11th a failure."""
    results = []
    for step in range(270):
        at = T0 - timedelta(minutes=30) + timedelta(seconds=40 * step)
        for target in (CRM_U1, CRM_U2, OTHER, C2D_U1):
            n = next(_ids)
            results.append(
                result(
                    target,
                    at + timedelta(seconds=n % 3),
                    ok=n % 11 != 0,
                    recognised=n % 7 != 0,
                )
            )
    return results


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (T0 - timedelta(minutes=30), T0 + timedelta(hours=3)),  # everything
        (T0, T0 + timedelta(hours=1)),  # one whole hour
        (T0 + timedelta(minutes=13, seconds=20), T0 + timedelta(hours=1, minutes=13, seconds=20)),
        (T0 - timedelta(seconds=7), T0 + timedelta(hours=2, seconds=31)),  # raw+min+hour edges
        (T0 + timedelta(seconds=10), T0 + timedelta(seconds=50)),  # inside one minute
    ],
)
async def test_recognition_rate_and_misses_equal_a_count_over_the_raw_results(
    store: Store, since: datetime, until: datetime
) -> None:
    traffic = _traffic()
    for start in range(0, len(traffic), 250):
        await store.results.add_many(traffic[start : start + 250])

    def inside(r: ProbeResult, user: str | None) -> bool:
        t = r.target
        return (
            (t.customer, t.location) == ("acme", "acme-ams")
            and (user is None or t.user == user)
            and since <= r.at < until
        )

    calls = [r for r in traffic if inside(r, None) and r.is_call]
    misses = [r for r in traffic if inside(r, None) and r.is_miss]
    counts = await store.results.recognition_rate("acme", "acme-ams", since, until)
    assert (counts.calls, counts.misses) == (len(calls), len(misses))
    assert counts.rate == ((len(calls) - len(misses)) / len(calls) if calls else None)

    crm_calls = [r for r in calls if r.target.service is Service.CRM]
    crm = await store.results.recognition_rate(
        "acme", "acme-ams", since, until, service=Service.CRM
    )
    assert crm.calls == len(crm_calls)

    user_misses = [r for r in traffic if inside(r, "u2") and r.is_miss]
    assert await store.results.misses("acme", "acme-ams", "u2", since, until) == len(user_misses)


async def test_recognition_rate_of_a_hand_counted_hour(store: Store) -> None:
    await store.results.add_many(
        [result(CRM_U1, T0 + timedelta(minutes=i), recognised=i >= 3) for i in range(20)]
        + [result(CRM_U2, T0 + timedelta(minutes=30), ok=False)]  # a failure is not a call
        + [result(CRM_U2, T0 + timedelta(hours=1))]  # outside [T0, T0+1h)
    )
    counts = await store.results.recognition_rate("acme", "acme-ams", T0, T0 + timedelta(hours=1))
    assert (counts.calls, counts.misses, counts.recognised, counts.rate) == (20, 3, 17, 0.85)
    assert await store.results.misses("acme", "acme-ams", "u1", T0, T0 + timedelta(hours=1)) == 3
    empty = await store.results.recognition_rate("acme", "nowhere", T0, T0 + timedelta(hours=1))
    assert (empty.calls, empty.rate) == (0, None)


@pytest.mark.parametrize("backend", ["sqlite"])  # EXPLAIN QUERY PLAN is SQLite's
async def test_raw_edge_counts_use_the_user_index(store: Store) -> None:
    query = _counts_query("raw", "acme", "acme-ams", "u1", None, T0, T0 + timedelta(seconds=30))
    async with store._db.read() as conn:
        compiled = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
        plan = (await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
    assert "USING INDEX ix_probe_results_customer_location_user_at" in plan[0][-1]


async def test_latest_keeps_the_newest_result_per_target_whatever_the_arrival_order(
    store: Store,
) -> None:
    newer = result(CRM_U1, T0 + timedelta(minutes=2), ok=False)
    older = result(CRM_U1, T0 + timedelta(minutes=1))
    await store.results.add_many([newer, result(C2D_U1, T0)])
    await store.results.add_many([older, result(OTHER, T0), result(C2D_U1, T0 + timedelta(1))])

    assert await store.results.latest_for(CRM_U1) == newer
    latest = await store.results.latest(customer="acme", location="acme-ams")
    assert [(r.target.service, r.target.user, r.at) for r in latest] == [
        (Service.CLICK2DIAL, "u1", T0 + timedelta(days=1)),
        (Service.CRM, "u1", T0 + timedelta(minutes=2)),
    ]
    assert len(await store.results.latest()) == 3
    assert await store.results.latest_for(CRM_U2) is None


async def test_retention_deletes_exactly_what_is_older_than_its_period(store: Store) -> None:
    now = datetime(2026, 3, 15, 12, 0, 30, tzinfo=UTC)
    raw_cutoff = now - timedelta(days=14)  # 2026-03-01 12:00:30
    hour_cutoff = now - timedelta(days=400)
    await store.results.add_many(
        [
            result(CRM_U1, raw_cutoff - timedelta(microseconds=1)),  # raw: old
            result(CRM_U1, raw_cutoff),  # raw: kept (not older than 14 days)
            result(CRM_U1, raw_cutoff - timedelta(seconds=90)),  # raw old; minute 11:59 ended
            result(CRM_U1, hour_cutoff - timedelta(minutes=1)),  # hour 11:00 ended by cutoff
            result(CRM_U1, hour_cutoff + timedelta(seconds=1)),  # hour 12:00 still running
        ]
    )
    deleted = await store.apply_retention(now, raw=timedelta(days=14), rollups=timedelta(days=400))
    # raw: 3 (all but the one at the cutoff); minute buckets 11:59 (ended 12:00) and the two
    # from 400 days ago; hour buckets: 400-days-ago 11:00 only (12:00 ends after the cutoff).
    assert deleted == {
        "probe_results": 4, "rollups_minute": 3, "rollups_hour": 1, "outbox": 0, "handovers": 0
    }  # fmt: skip

    kept = await store.results.history(CRM_U1, hour_cutoff - timedelta(days=1), now)
    assert [r.at for r in kept] == [raw_cutoff]
    minutes = await store.results.rollups("minute", hour_cutoff - timedelta(days=1), now)
    assert [m.bucket for m in minutes] == [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    hours = await store.results.rollups("hour", hour_cutoff - timedelta(days=1), now)
    assert [h.bucket for h in hours] == [
        hour_cutoff.replace(minute=0, second=0),
        datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    ]
    again = await store.apply_retention(now)
    assert again == {
        "probe_results": 0, "rollups_minute": 0, "rollups_hour": 0, "outbox": 0, "handovers": 0
    }  # fmt: skip


async def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2026, 3, 2, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.results.add_many([result(CRM_U1, naive)])
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.results.recognition_rate("acme", "acme-ams", naive, T0)
