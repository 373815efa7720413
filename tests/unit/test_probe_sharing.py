"""Several workers share the probing: rendezvous hashing gives every target exactly one owner
among the live workers, moves only what a joining or leaving worker gains or held, and the
scheduler runs only its own share, every worker on the same instants."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from test_scheduler_virtual_time import START, fake_probe, run_virtual, target

from classifier.observation import CALL_SERVICES, ProbeResult, TargetKey
from ctiwatch.clock import LoopClock
from ctiwatch.membership import owner, shares
from probes import ProbeContext, Scheduler, sequential_ids

INTERVAL = timedelta(seconds=10)
KEYS = [
    TargetKey(service, customer, f"{customer}-loc{n % 3}", f"user{n}")
    for customer in ("acme", "globex", "initech")
    for n in range(50)
    for service in CALL_SERVICES
]


def test_every_target_has_exactly_one_owner_and_the_workers_get_similar_shares() -> None:
    members = ["node-a/11/aaa", "node-b/12/bbb", "node-c/13/ccc"]
    found = shares(KEYS, members)
    assert Counter(k for keys in found.values() for k in keys) == Counter(KEYS)
    sizes = sorted(len(keys) for keys in found.values())
    assert sum(sizes) == len(KEYS) == 300
    assert sizes[0] >= 70 and sizes[-1] <= 130  # about a third each
    # The same on every worker, whatever order it lists the members in.
    assert shares(KEYS, list(reversed(members))) == found


def test_a_worker_leaving_moves_only_the_targets_it_held() -> None:
    three = ["a", "b", "c"]
    before = {k: owner(k, three) for k in KEYS}
    after = {k: owner(k, ["a", "b"]) for k in KEYS}
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == "c"}
    assert {after[k] for k in moved} == {"a", "b"}  # spread over the survivors


def test_a_worker_joining_takes_targets_from_the_others_and_moves_none_between_them() -> None:
    before = {k: owner(k, ["a", "b"]) for k in KEYS}
    after = {k: owner(k, ["a", "b", "c"]) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert moved and all(after[k] == "c" for k in moved)


def run_workers(
    members: dict[str, list[str]], until: timedelta, starts: dict[str, timedelta]
) -> tuple[list[tuple[str, ProbeResult]], dict[str, Scheduler]]:
    """Schedulers named by ``members`` (worker → the live members it sees), each started at
    ``START + starts[worker]``, on the same targets, each probing its share; results tagged
    with the worker that took them."""
    targets = [target(f"user{n}", service) for n in range(20) for service in CALL_SERVICES]
    taken: list[tuple[str, ProbeResult]] = []
    schedulers: dict[str, Scheduler] = {}

    async def main() -> None:
        async def one(name: str) -> None:
            clock = LoopClock()
            await clock.sleep(starts[name].total_seconds())
            scheduler = schedulers[name] = Scheduler(
                targets,
                transport=None,  # type: ignore[arg-type]
                ctx=ProbeContext(clock, timeout=5, retries=0, new_id=sequential_ids(name)),
                interval=INTERVAL,
                on_results=lambda batch: taken.extend((name, r) for r in batch),
                probes={"crm": fake_probe(lambda t: 0.5), "click2dial": fake_probe(lambda t: 0.5)},
                share=lambda key: owner(key, members[name]) == name,
                aligned=True,
            )
            await scheduler.run(until=START + until)

        async with asyncio.TaskGroup() as group:
            for name in members:
                group.create_task(one(name))

    run_virtual(main)
    return taken, schedulers


def test_three_workers_probe_each_target_once_per_interval_on_the_same_instants() -> None:
    live = ["a", "b", "c"]
    taken, schedulers = run_workers(
        {"a": live, "b": live, "c": live},
        until=timedelta(minutes=2),
        starts={"a": timedelta(0), "b": timedelta(seconds=3.3), "c": timedelta(seconds=7.9)},
    )
    per_round = Counter((r.target, r.at) for _, r in taken)
    assert set(per_round.values()) == {1}  # never twice in one round
    by_target: dict[TargetKey, list[datetime]] = {}
    for _, result in taken:
        by_target.setdefault(result.target, []).append(result.at)
    assert len(by_target) == 40
    for key, instants in by_target.items():
        instants.sort()
        # Every interval once, from the first round after the last worker started.
        assert all(b - a == INTERVAL for a, b in itertools.pairwise(instants))
        assert instants[0] < START + timedelta(seconds=8) + INTERVAL
        assert {name for name, r in taken if r.target == key} == {owner(key, live)}
    # The rounds every worker left to the others.
    assert sum(s.stats.rounds for s in schedulers.values()) == len(taken)
    assert all(s.stats.elsewhere > 0 for s in schedulers.values())


def test_when_a_worker_is_gone_the_others_take_its_targets_at_their_next_instants() -> None:
    live = ["a", "b", "c"]
    seen: dict[str, list[str]] = {"a": list(live), "b": list(live), "c": list(live)}
    taken: list[Any] = []

    def forget_c(now: datetime) -> None:
        if now >= START + timedelta(seconds=35):  # c died; a and b read the members again
            seen["a"] = seen["b"] = ["a", "b"]

    targets = [target(f"user{n}", service) for n in range(20) for service in CALL_SERVICES]

    async def main() -> None:
        async def one(name: str, until: timedelta) -> None:
            clock = LoopClock()

            def mine(key: TargetKey) -> bool:
                forget_c(clock.now())
                return owner(key, seen[name]) == name

            scheduler = Scheduler(
                targets,
                transport=None,  # type: ignore[arg-type]
                ctx=ProbeContext(clock, timeout=5, retries=0, new_id=sequential_ids(name)),
                interval=INTERVAL,
                on_results=lambda batch: taken.extend((name, r) for r in batch),
                probes={"crm": fake_probe(lambda t: 0.5), "click2dial": fake_probe(lambda t: 0.5)},
                share=mine,
                aligned=True,
            )
            await scheduler.run(until=START + until)

        async with asyncio.TaskGroup() as group:
            group.create_task(one("a", timedelta(minutes=1)))
            group.create_task(one("b", timedelta(minutes=1)))
            group.create_task(one("c", timedelta(seconds=20)))  # dies at 20 s

    run_virtual(main)
    per_round = Counter((r.target, r.at) for _, r in taken)
    assert set(per_round.values()) == {1}
    c_held = {t.key for t in targets if owner(t.key, live) == "c"}
    assert c_held
    for key in c_held:
        instants = sorted(r.at for _, r in taken if r.target == key)
        # Probed by c until it died, nobody until the others saw it gone, then by them.
        gap = [b - a for a, b in itertools.pairwise(instants) if b - a > INTERVAL]
        # At most: its last round up to an interval before it died, 15 s until the others
        # saw it gone, then up to an interval to the target's next instant.
        assert len(gap) == 1 and gap[0] <= timedelta(seconds=15) + 2 * INTERVAL
        assert instants[-1] > START + timedelta(seconds=45)
        late = {
            name for name, r in taken if r.target == key and r.at > START + timedelta(seconds=35)
        }
        assert late == {owner(key, ["a", "b"])}


def test_aligned_rounds_fall_on_the_epoch_grid_whenever_the_scheduler_starts() -> None:
    results: list[ProbeResult] = []
    alice = target("alice")

    async def main() -> None:
        clock = LoopClock()
        scheduler = Scheduler(
            [alice],
            transport=None,  # type: ignore[arg-type]
            ctx=ProbeContext(clock, timeout=5, retries=0, new_id=sequential_ids()),
            interval=INTERVAL,
            on_results=results.extend,
            probes={"crm": fake_probe(lambda t: 0)},
            aligned=True,
        )
        await scheduler.run(until=START + timedelta(seconds=30))
        offset = scheduler.offset(alice.key)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        for result in results:
            assert (result.at - epoch - offset) % INTERVAL == timedelta(0)

    run_virtual(main)
    assert len(results) == 3
    assert START <= results[0].at < START + INTERVAL
