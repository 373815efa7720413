"""Several workers, one truth: the leader lease and its fence, on a fixed (virtual) clock and a
real database (SQLite and PostgreSQL).

A worker takes the lease when it is free or has run out (or its holder is an earlier life of
the same node), renews it while it holds it, and loses it to a takeover; every takeover bumps the
generation, and a transaction fenced at an old generation writes nothing. On PostgreSQL a step in
flight holds the lease row share-locked: a takeover waits for it to commit, and the old leader's
next step is refused.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ctiwatch.clock import FixedClock
from ctiwatch.config import Config, ConfigError
from ctiwatch.leadership import Leadership
from ctiwatch.storage import IncidentRecord, Store, TimelineEntry
from ctiwatch.storage.incidents import IncidentNumberTaken
from ctiwatch.storage.leader import Fence, Fenced
from sla.priority import Priority

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=15)
RENEW = timedelta(seconds=5)


def worker(store: Store, clock: FixedClock, name: str, **kwargs: object) -> Leadership:
    return Leadership(store.leader, clock, name, lease=LEASE, renew_every=RENEW, **kwargs)  # type: ignore[arg-type]


def record(number: int, title: str, now: datetime) -> IncidentRecord:
    return IncidentRecord(
        number=number,
        customer="acme",
        automatic=True,
        priority=Priority(1),
        status="open",
        title=title,
        opened_at=T0,
        updated_at=now,
    )


async def test_one_worker_leads_until_its_lease_runs_out_then_another_takes_over_fenced(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    a, b = worker(store, clock, "node-a/1/aaa"), worker(store, clock, "node-b/2/bbb")
    assert await a.try_once() and a.fence() == Fence("monitor", 1)
    assert not await b.try_once() and b.fence() is None  # a's lease runs on

    clock.advance(RENEW)
    assert await a.try_once()  # renewed: until T0 + 5 s + 15 s
    clock.advance(LEASE)  # a pauses: no renewal for 15 s; its lease ran out at T0 + 20 s
    clock.advance(timedelta(seconds=1))
    assert await b.try_once() and b.fence() == Fence("monitor", 2)
    assert b.takeovers == 1 and b.changed.is_set()

    # a wakes up: its renewal finds another holder, and it steps down.
    assert not await a.try_once()
    assert a.fence() is None and a.changed.is_set()
    stored = await store.leader.get()
    assert stored is not None and (stored.holder, stored.generation) == ("node-b/2/bbb", 2)


async def test_a_transaction_fenced_at_an_old_generation_writes_nothing(store: Store) -> None:
    clock = FixedClock(T0)
    a, b = worker(store, clock, "node-a/1/aaa"), worker(store, clock, "node-b/2/bbb")
    await a.try_once()
    old = a.fence()
    assert old is not None
    async with store.transaction(fence=old) as tx:
        await tx.incidents.save(record(1, "written by a", T0), generation=1, new=True)

    clock.advance(LEASE + timedelta(seconds=1))
    await b.try_once()
    with pytest.raises(Fenced, match=r"generation 1.*generation 2 of node-b/2/bbb"):
        async with store.transaction(fence=old) as tx:
            await tx.incidents.save(record(1, "a paused old leader", clock.now()), generation=1)
            await tx.timeline.add(TimelineEntry(1, clock.now(), "note", "never stored"))
    stored = await store.incidents.get(1)
    assert stored is not None and stored.title == "written by a"
    assert await store.incidents.timeline(1) == []


async def test_an_incident_save_never_overwrites_a_newer_generations_write(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.incidents.save(record(7, "generation 3", T0), generation=3, new=True)
    async with store.transaction() as tx:
        await tx.incidents.save(record(7, "generation 2", T0), generation=2)
    stored = await store.incidents.get(7)
    assert stored is not None and stored.title == "generation 3"
    async with store.transaction() as tx:
        await tx.incidents.save(record(7, "generation 3 again", T0), generation=3)
    stored = await store.incidents.get(7)
    assert stored is not None and stored.title == "generation 3 again"


async def test_a_new_incident_whose_number_is_stored_already_is_refused_and_the_counter_moves(
    store: Store,
) -> None:
    async with store.transaction() as tx:
        await tx.incidents.save(record(4, "first", T0), new=True)
    assert await store.incidents.last_number() == 4
    with pytest.raises(IncidentNumberTaken, match="incident 4 is stored already"):
        async with store.transaction() as tx:
            await tx.incidents.save(record(4, "second", T0), new=True)
    stored = await store.incidents.get(4)
    assert stored is not None and stored.title == "first"
    async with store.transaction() as tx:
        assert await tx.incidents.next_number() == 5  # the database counter goes on from 4


async def test_the_lease_of_an_earlier_life_of_this_node_is_taken_at_once(store: Store) -> None:
    clock = FixedClock(T0)
    earlier = worker(store, clock, "node-a/111/old")
    await earlier.try_once()
    stranger = worker(store, clock, "node-b/222/new", gone=lambda holder: False)
    assert not await stranger.try_once()
    again = worker(store, clock, "node-a/333/new", gone=lambda holder: holder == "node-a/111/old")
    assert await again.try_once() and again.fence() == Fence("monitor", 2)


async def test_a_leader_that_cannot_reach_the_database_steps_down_once_its_lease_ran_out(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    a = worker(store, clock, "node-a/1/aaa")
    await a.try_once()
    a._leases = _Unreachable()  # type: ignore[assignment]  # the database is away for it
    clock.advance(RENEW)
    assert await a.try_once()  # not renewed, but its lease still runs: it keeps leading
    assert "unreachable" in a.last_error
    clock.advance(LEASE)
    assert not await a.try_once() and a.fence() is None


class _Unreachable:
    async def renew(self, *args: object) -> None:
        raise OSError("database unreachable")


async def test_a_clean_stop_gives_the_lease_up_for_the_next_worker_at_once(store: Store) -> None:
    clock = FixedClock(T0)
    a, b = worker(store, clock, "node-a/1/aaa"), worker(store, clock, "node-b/2/bbb")
    await a.try_once()
    await a.release()
    assert await b.try_once() and b.fence() == Fence("monitor", 2)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_takeover_waits_for_the_step_in_flight_then_the_old_leaders_next_step_is_refused(
    store: Store, storage_url: str
) -> None:
    clock = FixedClock(T0)
    a, b = worker(store, clock, "node-a/1/aaa"), worker(store, clock, "node-b/2/bbb")
    await a.try_once()
    fence = a.fence()
    assert fence is not None
    clock.advance(LEASE + timedelta(seconds=1))  # a's lease ran out while its step runs
    watcher = create_async_engine(storage_url)
    try:
        async with store.transaction(fence=fence) as tx:
            await tx.incidents.save(record(1, "a's last step", T0), generation=1, new=True)
            takeover = asyncio.create_task(b.try_once())

            async def waiting_on_the_lease_row() -> bool:
                async with watcher.connect() as conn:
                    found = await conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'"
                        )
                    )
                    return bool(found.scalar_one())

            while not await waiting_on_the_lease_row():
                assert not takeover.done()
                await asyncio.sleep(0.02)
            assert not takeover.done()
        assert await takeover  # a's step committed first; then b took over
    finally:
        await watcher.dispose()
    stored = await store.incidents.get(1)
    assert stored is not None and stored.title == "a's last step"
    with pytest.raises(Fenced):
        async with store.transaction(fence=fence) as tx:
            await tx.incidents.save(record(1, "too late", clock.now()), generation=1)


def test_a_renewal_interval_above_half_the_lease_is_a_config_error_naming_the_field() -> None:
    with pytest.raises((ConfigError, ValueError), match=r"workers\.renew_every"):
        Config.model_validate({"workers": {"lease": "10s", "renew_every": "6s"}})
