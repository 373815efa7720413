"""The recent-ids LRU: a redelivered result id is dropped, the oldest ids make room."""

from __future__ import annotations

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


def test_capacity_forgets_the_least_recently_seen_id() -> None:
    recent = RecentIds(capacity=3)
    for result_id in ("a", "b", "c"):
        recent.first_time(result_id)

    recent.first_time("a")  # seen again: now the most recent
    recent.first_time("d")  # evicts "b", the least recently seen

    assert ("a" in recent, "b" in recent, "c" in recent, "d" in recent) == (
        True,
        False,
        True,
        True,
    )
    assert recent.first_time("b") is True
