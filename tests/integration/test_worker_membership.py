"""Several workers share the probing: each keeps a heartbeat row, reads which workers are alive
and probes its share of the targets (rendezvous hashing); on a fixed clock and a real database
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PG_HOST, PG_PORT
from running_app import HOST
from sqlalchemy.engine import make_url
from test_database_away import CuttableProxy

from classifier.observation import CALL_SERVICES, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.membership import Membership, owner
from ctiwatch.storage import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=15)
RENEW = timedelta(seconds=5)
KEYS = [
    TargetKey(service, customer, f"{customer}-ams", f"user{n}")
    for customer in ("acme", "globex")
    for n in range(15)
    for service in CALL_SERVICES
]


def member(store: Store, clock: FixedClock, holder: str, **kwargs: object) -> Membership:
    return Membership(
        store.members,
        clock,
        holder,
        KEYS,
        lease=LEASE,
        renew_every=RENEW,
        **kwargs,  # type: ignore[arg-type]
    )


def probed(workers: list[Membership]) -> Counter[TargetKey]:
    return Counter(k for w in workers for k in KEYS if w.mine(k))


async def test_three_live_workers_probe_every_target_exactly_once_between_them(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    a, b, c = (member(store, clock, f"node-{n}/1{i}/{n * 3}") for i, n in enumerate("abc"))
    assert a.share == len(KEYS)  # alone before its first beat: everything is its own
    for w in (a, b, c):
        await w.beat()
    for w in (a, b, c):
        await w.beat()  # a and b see c now
    assert (
        a.members == b.members == c.members == ("node-a/10/aaa", "node-b/11/bbb", "node-c/12/ccc")
    )
    assert probed([a, b, c]) == Counter(KEYS)  # each target once
    assert all(w.share > 0 for w in (a, b, c))
    assert {k for k in KEYS if c.mine(k)} == {k for k in KEYS if owner(k, c.members) == c.holder}


async def test_a_dead_workers_targets_are_taken_over_once_its_heartbeat_runs_out(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    a, b, c = (member(store, clock, f"node-{n}/1{i}/{n * 3}") for i, n in enumerate("abc"))
    for _ in range(2):
        for w in (a, b, c):
            await w.beat()
    held_by_c = {k for k in KEYS if c.mine(k)}
    # c dies (no more beats). Until its heartbeat runs out the others leave its targets alone:
    # none is probed twice.
    clock.advance(LEASE - timedelta(seconds=1))
    for w in (a, b):
        await w.beat()
    assert len(a.members) == 3 and probed([a, b]) == Counter(k for k in KEYS if k not in held_by_c)
    # Its heartbeat ran out (a lease after its last beat): at their next beat a and b take its
    # targets between them, and keep their own.
    clock.advance(timedelta(seconds=1))
    mine_before = {w.holder: {k for k in KEYS if w.mine(k)} for w in (a, b)}
    for w in (a, b):
        await w.beat()
    assert a.members == b.members == ("node-a/10/aaa", "node-b/11/bbb")
    assert probed([a, b]) == Counter(KEYS)
    for w in (a, b):
        assert mine_before[w.holder] <= {k for k in KEYS if w.mine(k)}


async def test_a_clean_stop_hands_its_targets_over_at_the_next_beat(store: Store) -> None:
    clock = FixedClock(T0)
    a, b = member(store, clock, "node-a/1/aaa"), member(store, clock, "node-b/2/bbb")
    for w in (a, b, a):
        await w.beat()
    assert a.share < len(KEYS)
    await b.leave()
    clock.advance(RENEW)
    await a.beat()
    assert a.members == ("node-a/1/aaa",) and a.share == len(KEYS)


async def test_an_earlier_life_of_this_node_whose_process_is_gone_holds_no_targets(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    old = member(store, clock, "node-a/4242/old")
    await old.beat()  # then killed: its row runs on for a lease
    b = member(store, clock, "node-b/2/bbb")
    await b.beat()

    def gone(holder: str) -> bool:
        return holder == "node-a/4242/old"

    restarted = member(store, clock, "node-a/4343/new", gone=gone)
    await restarted.beat()
    await b.beat()
    assert restarted.members == ("node-a/4343/new", "node-b/2/bbb")
    # b does not know that the old life is gone (another node): it leaves the old life's
    # targets alone until its heartbeat runs out, so none is probed twice meanwhile.
    assert b.members == ("node-a/4242/old", "node-a/4343/new", "node-b/2/bbb")
    assert max(probed([restarted, b]).values()) == 1


async def test_expired_heartbeats_are_deleted_and_never_counted(store: Store) -> None:
    clock = FixedClock(T0)
    for n in range(5):
        await member(store, clock, f"node-x/{n}/gone").beat()
    clock.advance(LEASE * 5)
    a = member(store, clock, "node-a/1/aaa")
    await a.beat()
    assert [m.holder for m in await store.members.alive(clock.now())] == ["node-a/1/aaa"]
    assert a.members == ("node-a/1/aaa",) and a.share == len(KEYS)
    lease = await store.leader.get()
    assert lease is None  # the members' rows are not the monitor's lease


@pytest.mark.postgres
async def test_a_worker_that_cannot_reach_the_database_for_a_lease_probes_every_target(
    pg_database_factory: Callable[[], Awaitable[str]],
) -> None:
    clock = FixedClock(T0)
    url = await pg_database_factory()
    async with Store.open(url) as store, CuttableProxy(PG_HOST, PG_PORT) as proxy:
        other = member(store, clock, "node-b/2/bbb")
        await other.beat()
        through_proxy = make_url(url).set(host=HOST, port=proxy.port)
        async with Store.open(through_proxy.render_as_string(hide_password=False)) as away:
            a = member(away, clock, "node-a/1/aaa")
            await a.beat()
            assert a.share < len(KEYS)
            proxy.cut()  # this worker's database is away from here on
            clock.advance(RENEW)
            await a.beat()
            assert a.share < len(KEYS) and a.last_error  # the last view holds for a while
            clock.advance(LEASE)
            await a.beat()
            # Nobody may be probing its targets now: better twice than never.
            assert a.members == ("node-a/1/aaa",) and a.share == len(KEYS)
            proxy.restore()
            clock.advance(RENEW)
            await other.beat()
            await a.beat()
            assert len(a.members) == 2 and a.share < len(KEYS)
