"""The scheduler's dispatcher in virtual time: early wake-up, slot reuse, no guard needed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.clock import LoopClock, VirtualTimeLoop
from probes import (
    PROBES,
    Probe,
    ProbeContext,
    ProbeTarget,
    Scheduler,
    Transport,
    sequential_ids,
    spread_offset,
)
from probes.registry import SELF_BOUNDED

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def target(user: str) -> ProbeTarget:
    return ProbeTarget(
        TargetKey(Service.CRM, "acme", "acme-ams", user), "http://sim", "t", "+31", "X"
    )


def run(
    targets: list[ProbeTarget], probe: Probe, until: timedelta, **options: Any
) -> list[ProbeResult]:
    results: list[ProbeResult] = []

    async def main() -> None:
        ctx = ProbeContext(LoopClock(), timeout=10, retries=0, new_id=sequential_ids())
        scheduler = Scheduler(
            targets,
            None,  # type: ignore[arg-type]
            ctx,
            interval=MINUTE,
            on_results=results.extend,
            probes={"crm": probe},
            **options,
        )
        await scheduler.run(start=START, until=START + until)

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(START)) as runner:
        runner.run(main())
    return results


def test_round_pushed_before_the_instant_slept_for_still_starts_on_time() -> None:
    # early finishes its 1 s round first and is next due at its offset + 60 s, so the
    # dispatcher sleeps until then; late, still running, is next due before that instant.
    users = [f"u{n}" for n in range(40)]
    offsets = {u: spread_offset(target(u).key, MINUTE) for u in users}
    pairs = [
        (a, b)
        for a in users
        for b in users
        if timedelta(seconds=5) < offsets[b] - offsets[a] < timedelta(seconds=50)
    ]
    late, early = pairs[0]
    gap = offsets[early] - offsets[late]
    starts: list[tuple[str, datetime]] = []

    async def probe(t: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
        began = ctx.clock.now()
        starts.append((t.key.user, began))
        first_round = began - START < MINUTE
        await ctx.clock.sleep(
            (gap + timedelta(seconds=5)).total_seconds()
            if first_round and t.key.user == late
            else 1
        )
        return ProbeResult(ctx.new_id(), t.key, began, True, True, 0.0, 200, "fake")

    run([target(late), target(early)], probe, until=2 * MINUTE, spread=True, deadline=200)
    assert [when for user, when in starts if user == late] == [
        START + offsets[late],
        START + offsets[late] + MINUTE,
    ]


def test_busy_slots_take_the_rounds_due_in_order_of_their_instants() -> None:
    starts: list[tuple[str, datetime]] = []

    async def probe(t: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
        began = ctx.clock.now()
        starts.append((t.key.user, began))
        await ctx.clock.sleep(10)
        return ProbeResult(ctx.new_id(), t.key, began, True, True, 0.0, 200, "fake")

    targets = [target(f"u{n}") for n in range(5)]
    results = run(targets, probe, until=MINUTE, concurrency=2, spread=False)
    second = timedelta(seconds=1)
    assert [(user, (when - START) // second) for user, when in starts] == [
        ("u0", 0),
        ("u1", 0),
        ("u2", 10),
        ("u3", 10),
        ("u4", 20),
    ]
    assert [r.at for r in results] == [START] * 5


def test_registry_probes_are_the_self_bounded_ones() -> None:
    assert frozenset(PROBES.values()) == SELF_BOUNDED
