"""The recent-ids filter: a redelivered result id is dropped, the oldest ids make room, and
it holds its window in under 25 bytes per id."""

from __future__ import annotations

import tracemalloc

from ctiwatch.mqtt.dedup import RecentIds


def test_second_sighting_of_an_id_is_not_the_first() -> None:
    recent = RecentIds(capacity=10)

    assert [recent.first_time(i) for i in ("a", "b", "a", "c", "b")] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert len(recent) == 3


def test_capacity_forgets_the_ids_first_seen_longest_ago() -> None:
    recent = RecentIds(capacity=3)
    for result_id in ("a", "b", "c"):
        recent.first_time(result_id)

    recent.first_time("d")  # evicts "a", the first seen

    assert ("a" in recent, "b" in recent, "c" in recent, "d" in recent) == (
        False,
        True,
        True,
        True,
    )
    assert recent.first_time("a") is True


def test_exactly_the_newest_capacity_ids_are_remembered() -> None:
    recent = RecentIds(capacity=1_000)
    for n in range(5_000):
        assert recent.first_time(f"r-{n}")
        assert len(recent) == min(n + 1, 1_000)
        assert f"r-{max(0, n - 999)}" in recent  # the oldest of the newest 1,000
        assert n < 1_000 or f"r-{n - 1_000}" not in recent

    assert all(not recent.first_time(f"r-{n}") for n in range(4_000, 5_000))
    assert recent.first_time("r-0") is True  # long forgotten


def test_a_full_window_of_50000_ids_takes_under_25_bytes_per_id() -> None:
    recent = RecentIds(capacity=50_000)
    ids = [f"agent-1:2026-12-06T10:00:00Z:{n:08d}:c01/l01/u001/click2dial" for n in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for result_id in ids:
            recent.first_time(result_id)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert len(recent) == 50_000
    assert recent.footprint() == (16 + 2) * 50_000
    assert held < 25 * 50_000  # the id strings and an ordered dict of them took ~175
