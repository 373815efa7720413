"""The probe scheduler in virtual time: instants, spreading, overlap, deadline, concurrency."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.clock import LoopClock, VirtualTimeLoop
from ctiwatch.config import config_from_data
from ctiwatch.settings import targets_from_config
from ctiwatch.simulator import SimulatorCore, SimulatorTransport, parse_fault
from probes import (
    Probe,
    ProbeContext,
    ProbeTarget,
    Scheduler,
    Transport,
    sequential_ids,
    spread_offset,
)

T = TypeVar("T")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """See tests/unit/test_probe_simulator.py: VirtualTimeLoop with a usable timer resolution."""

    def factory() -> VirtualTimeLoop:
        loop = VirtualTimeLoop(START)
        loop._clock_resolution = max(loop._clock_resolution, 1e-6)  # type: ignore[attr-defined]
        return loop

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def target(user: str, service: Service = Service.CRM) -> ProbeTarget:
    return ProbeTarget(TargetKey(service, "acme", "acme-ams", user), "http://sim", "t", "+31", "X")


def fake_probe(seconds: Callable[[ProbeTarget], float], log: list[Any] | None = None) -> Probe:
    """A probe that takes ``seconds(target)`` of clock time and records when it ran."""

    async def probe(target: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
        began = ctx.clock.now()
        if log is not None:
            log.append(("start", target.key.user, began))
        await ctx.clock.sleep(seconds(target))
        if log is not None:
            log.append(("end", target.key.user, ctx.clock.now()))
        return ProbeResult(ctx.new_id(), target.key, began, True, True, 0.0, 200, "fake")

    return probe


def schedule(
    targets: list[ProbeTarget],
    probe: Probe,
    *,
    until: timedelta,
    **options: Any,
) -> tuple[list[ProbeResult], Scheduler]:
    results: list[ProbeResult] = []
    holder: list[Scheduler] = []

    async def main() -> None:
        ctx = ProbeContext(LoopClock(), timeout=10, retries=0, new_id=sequential_ids())
        options.setdefault("spread", False)
        scheduler = Scheduler(
            targets,
            transport=None,  # type: ignore[arg-type]
            ctx=ctx,
            interval=options.pop("interval", 60),
            on_results=results.extend,
            probes={"crm": probe, "click2dial": probe},
            **options,
        )
        holder.append(scheduler)
        await scheduler.run(until=START + until)

    run_virtual(main)
    return results, holder[0]


def at_by_user(results: list[ProbeResult]) -> dict[str, list[datetime]]:
    found: dict[str, list[datetime]] = {}
    for result in results:
        found.setdefault(result.target.user, []).append(result.at)
    return found


def test_without_spread_rounds_start_exactly_every_interval() -> None:
    results, scheduler = schedule(
        [target("alice"), target("bob")], fake_probe(lambda t: 2.5), until=3 * MINUTE
    )
    rounds = [START, START + MINUTE, START + 2 * MINUTE]
    assert at_by_user(results) == {"alice": rounds, "bob": rounds}
    assert scheduler.stats.rounds == 6


def test_round_due_at_until_is_not_run() -> None:
    results, _ = schedule([target("alice")], fake_probe(lambda t: 0), until=MINUTE)
    assert [r.at for r in results] == [START]


def test_spread_offsets_are_stable_distinct_and_inside_the_interval() -> None:
    keys = [target(f"user{n}").key for n in range(200)]
    offsets = [spread_offset(key, MINUTE) for key in keys]
    assert offsets == [spread_offset(key, MINUTE) for key in keys]
    assert all(timedelta(0) <= offset < MINUTE for offset in offsets)
    assert len(set(offsets)) == 200
    # Spread over the minute: every 10 s slice holds some targets.
    assert {int(offset.total_seconds() // 10) for offset in offsets} == {0, 1, 2, 3, 4, 5}
    assert spread_offset(target("alice").key, MINUTE) == timedelta(seconds=21, microseconds=151_450)


def test_with_spread_each_target_keeps_its_offset_every_round() -> None:
    targets = [target("alice"), target("bob")]
    results, scheduler = schedule(targets, fake_probe(lambda t: 1), until=2 * MINUTE, spread=True)
    for t in targets:
        offset = scheduler.offset(t.key)
        assert at_by_user(results)[t.key.user] == [START + offset, START + offset + MINUTE]


def test_overrunning_round_skips_that_target_only_and_never_overlaps() -> None:
    log: list[Any] = []
    probe = fake_probe(lambda t: 90 if t.key.user == "slow" else 1, log)
    results, scheduler = schedule(
        [target("slow"), target("quick")], probe, until=4 * MINUTE, deadline=200
    )
    assert at_by_user(results) == {
        "slow": [START, START + 2 * MINUTE],
        "quick": [START + n * MINUTE for n in range(4)],
    }
    assert scheduler.stats.skipped == 2
    slow_runs = [(kind, when) for kind, user, when in log if user == "slow"]
    assert slow_runs == [
        ("start", START),
        ("end", START + timedelta(seconds=90)),
        ("start", START + 2 * MINUTE),
        ("end", START + timedelta(seconds=210)),
    ]


def test_deadline_turns_a_hung_probe_into_a_failed_round() -> None:
    results, scheduler = schedule(
        [target("hung")], fake_probe(lambda t: 1000), until=MINUTE, deadline=30
    )
    assert results == [
        ProbeResult(
            result_id="r1",
            target=target("hung").key,
            at=START,
            ok=False,
            recognised=None,
            latency_ms=30000.0,
            status=None,
            evidence="round deadline of 30 s exceeded",
        )
    ]
    assert scheduler.stats.deadline_exceeded == 1


def test_default_deadline_is_the_contexts_worst_case_plus_a_second() -> None:
    results, _ = schedule([target("hung")], fake_probe(lambda t: 1000), until=MINUTE)
    assert results[0].evidence == "round deadline of 11 s exceeded"  # timeout 10, no retries


def test_concurrency_limit_bounds_probes_in_flight_and_keeps_round_instants() -> None:
    in_flight = 0
    peak = 0

    async def probe(target: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        began = ctx.clock.now()
        await ctx.clock.sleep(5)
        in_flight -= 1
        return ProbeResult(ctx.new_id(), target.key, began, True, True, 0.0, 200, "fake")

    targets = [target(f"u{n}") for n in range(10)]
    results, _ = schedule(targets, probe, until=MINUTE, concurrency=3)
    assert peak == 3
    # Ten probes of 5 s through three slots: the last starts 15 s late, but every result
    # belongs to the round that started at START.
    assert [r.at for r in results] == [START] * 10


def test_probe_that_raises_becomes_a_failed_round_and_others_go_on() -> None:
    async def broken(target: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
        raise KeyError("boom")

    results, scheduler = schedule([target("alice")], broken, until=2 * MINUTE)
    assert [(r.at, r.ok, r.evidence) for r in results] == [
        (START, False, "probe error: KeyError: 'boom'"),
        (START + MINUTE, False, "probe error: KeyError: 'boom'"),
    ]
    assert scheduler.stats.probe_errors == 2


def test_async_sink_receives_results_in_batches_per_instant() -> None:
    batches: list[list[str]] = []

    async def sink(batch: list[ProbeResult]) -> None:
        await asyncio.sleep(0)
        batches.append([r.target.user for r in batch])

    async def main() -> None:
        ctx = ProbeContext(LoopClock(), new_id=sequential_ids())
        scheduler = Scheduler(
            [target("alice"), target("bob")],
            None,  # type: ignore[arg-type]
            ctx,
            interval=60,
            on_results=sink,
            spread=False,
            probes={"crm": fake_probe(lambda t: 1 if t.key.user == "alice" else 2)},
        )
        await scheduler.run(until=START + 2 * MINUTE)

    run_virtual(main)
    assert batches == [["alice"], ["bob"], ["alice"], ["bob"]]


def test_unknown_probe_kind_is_refused_up_front() -> None:
    ctx = ProbeContext(LoopClock())
    with pytest.raises(ValueError, match="no probe for kind"):
        Scheduler([target("alice")], None, ctx, interval=60, on_results=print, probes={})  # type: ignore[arg-type]


def test_real_probes_against_the_simulator_see_an_outage_window_round_by_round() -> None:
    config = config_from_data(
        {"topology": {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["a"]}]}]}}
    )
    results: list[ProbeResult] = []

    async def main() -> None:
        clock = LoopClock()
        core = SimulatorCore.from_config(config)
        core.faults.add(
            parse_fault(
                {
                    "service": "crm",
                    "kind": "outage",
                    "from": (START + 2 * MINUTE).isoformat(),
                    "to": (START + 4 * MINUTE).isoformat(),
                },
                START,
                "f1",
            )
        )
        scheduler = Scheduler(
            targets_from_config(config),
            SimulatorTransport(core, clock, random.Random(1)),
            ProbeContext(clock, new_id=sequential_ids()),
            interval=60,
            on_results=results.extend,
            spread=False,
        )
        await scheduler.run(until=START + 6 * MINUTE)

    run_virtual(main)
    crm = [
        (int((r.at - START) / MINUTE), r.ok, r.attempts)
        for r in results
        if r.target.service == Service.CRM
    ]
    assert crm == [
        (0, True, 1),
        (1, True, 1),
        (2, False, 3),
        (3, False, 3),
        (4, True, 1),
        (5, True, 1),
    ]
    assert all(r.ok for r in results if r.target.service == Service.CLICK2DIAL)
    assert len(results) == 12


def instant_probe(log: list[Any], wait: Callable[[ProbeTarget], float] = lambda t: 0) -> Probe:
    """A probe that answers without waiting unless ``wait(target)`` says otherwise; it records
    the task each round ran in."""

    async def probe(target: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
        began = ctx.clock.now()
        log.append((target.key.user, began, asyncio.current_task()))
        seconds = wait(target)
        if seconds:
            await ctx.clock.sleep(seconds)
        return ProbeResult(ctx.new_id(), target.key, began, True, True, 0.0, 200, "fake")

    return probe


def batches_of(targets: list[ProbeTarget], probe: Probe, until: timedelta) -> list[list[str]]:
    batches: list[list[str]] = []

    async def main() -> None:
        scheduler = Scheduler(
            targets,
            None,  # type: ignore[arg-type]
            ProbeContext(LoopClock(), retries=0, new_id=sequential_ids()),
            interval=60,
            on_results=lambda batch: batches.append([r.target.user for r in batch]),
            spread=False,
            probes={"crm": probe},
        )
        await scheduler.run(until=START + until)

    run_virtual(main)
    return batches


def test_rounds_that_finish_without_waiting_run_in_one_task_and_come_in_one_batch() -> None:
    log: list[Any] = []
    users = ["alice", "bob", "carol", "dave"]
    batches = batches_of([target(u) for u in users], instant_probe(log), 2 * MINUTE)
    assert batches == [users, users]
    first, second = log[:4], log[4:]
    assert [(user, at) for user, at, _ in first] == [(u, START) for u in users]
    assert [(user, at) for user, at, _ in second] == [(u, START + MINUTE) for u in users]
    assert len({task for _, _, task in first}) == 1
    assert len({task for _, _, task in second}) == 1


def test_a_round_that_waits_passes_the_rounds_due_with_it_to_another_task() -> None:
    log: list[Any] = []
    users = ["alice", "bob", "carol", "dave"]
    probe = instant_probe(log, lambda t: 30 if t.key.user == "bob" else 0)
    batches = batches_of([target(u) for u in users], probe, MINUTE)
    # Nobody waits for bob: every round starts at START, and the rounds that finished then
    # come in one batch; bob's comes when it ends, 30 s later.
    assert [(user, at) for user, at, _ in log] == [(u, START) for u in users]
    assert batches == [["alice", "carol", "dave"], ["bob"]]
    tasks = {user: task for user, _, task in log}
    assert tasks["alice"] is tasks["bob"]
    assert tasks["carol"] is tasks["dave"]
    assert tasks["bob"] is not tasks["carol"]


def test_a_waiting_round_with_every_slot_taken_leaves_the_rest_to_the_dispatcher() -> None:
    log: list[Any] = []
    users = ["alice", "bob", "carol"]
    probe = instant_probe(log, lambda t: 5)
    results, _ = schedule([target(u) for u in users], probe, until=MINUTE, concurrency=1)
    assert [(user, at) for user, at, _ in log] == [
        ("alice", START),
        ("bob", START + timedelta(seconds=5)),
        ("carol", START + timedelta(seconds=10)),
    ]
    assert [r.at for r in results] == [START] * 3
