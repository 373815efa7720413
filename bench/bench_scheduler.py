"""Scheduler lateness on the real clock: 10,000 targets, every round timed against its instant.

``TARGETS`` targets (Click2Dial and CRM for half as many users) with spread offsets on an
``INTERVAL`` of 10 s, so the scheduler starts 1,000 rounds a second, run on ``RealClock`` for
``SECONDS``. Every round is a real probe: by default over HTTP (``AiohttpTransport``, one
keep-alive session) to the local target of ``bench_probes`` (its own process, answers from
``SimulatorCore``); ``--transport instant`` answers in-process from the simulator core instead.
Lateness is the instant a round's probe starts minus the round's scheduled instant
(``start + offset + k * interval``), for every round; reported as p50 / p99 / max. Goal: p99
under 25 ms.

``python -m bench scheduler`` runs it with the defaults; ``python bench/bench_scheduler.py
--help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

import aiohttp

from bench.bench_probes import CONTACT, NUMBER, TOKEN, _start_target
from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.clock import RealClock
from ctiwatch.simulator import SimulatorCore, SimulatorTransport
from probes import (
    PROBES,
    AiohttpTransport,
    Probe,
    ProbeContext,
    ProbeTarget,
    Scheduler,
    Transport,
)

TARGETS = 10_000
INTERVAL = 10.0
SECONDS = 25.0
CONCURRENCY = 100
GOAL_P99_MS = 25.0


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _run(args: argparse.Namespace, base_url: str) -> None:
    clock = RealClock()
    targets = [
        ProbeTarget(
            TargetKey(service, "bench", "bench-ams", f"user{n}"), base_url, TOKEN, NUMBER, CONTACT
        )
        for n in range(args.targets // 2)
        for service in (Service.CLICK2DIAL, Service.CRM)
    ]
    lateness: list[float] = []
    counts = {"results": 0, "failed": 0}
    interval = timedelta(seconds=args.interval)
    origin = clock.now() + timedelta(seconds=0.5)
    holder: list[Scheduler] = []
    offsets: dict[TargetKey, timedelta] = {}

    def timed(probe: Probe) -> Probe:
        async def run(target: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
            began = clock.now()
            offset = offsets.get(target.key)
            if offset is None:
                offset = offsets[target.key] = holder[0].offset(target.key)
            first = origin + offset
            due = first + ((began - first) // interval) * interval
            lateness.append((began - due).total_seconds())
            return await probe(target, transport, ctx)

        return run

    def sink(batch: list[ProbeResult]) -> None:
        counts["results"] += len(batch)
        counts["failed"] += sum(not r.ok for r in batch)

    async def go(transport: Transport) -> Scheduler:
        scheduler = Scheduler(
            targets,
            transport,
            ProbeContext(clock, timeout=5.0, retries=2, retry_backoff=0.5),
            interval=interval,
            on_results=sink,
            concurrency=args.concurrency,
            probes={kind: timed(probe) for kind, probe in PROBES.items()},
        )
        holder.append(scheduler)
        await scheduler.run(start=origin, until=origin + timedelta(seconds=args.seconds))
        return scheduler

    cpu = time.process_time()
    if args.transport == "http":
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            scheduler = await go(AiohttpTransport(session))
    else:
        core = SimulatorCore(TOKEN)
        scheduler = await go(SimulatorTransport(core, clock, random.Random(1)))
    cpu = time.process_time() - cpu
    ordered = sorted(lateness)
    p50, p99 = _percentile(ordered, 0.5) * 1000, _percentile(ordered, 0.99) * 1000
    worst = ordered[-1] * 1000
    stats = scheduler.stats
    print(
        f"{args.targets:,} targets every {args.interval:g} s ({args.targets / args.interval:,.0f}"
        f" rounds/s), {args.transport} transport, {args.seconds:g} s on RealClock: "
        f"{len(ordered):,} rounds, {counts['failed']} failed, {stats.skipped} skipped; "
        f"lateness p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms "
        f"(goal p99 < {GOAL_P99_MS:g} ms: {'met' if p99 < GOAL_P99_MS else 'NOT met'}); "
        f"CPU {cpu / args.seconds:.2f} cores",
        flush=True,
    )


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=TARGETS)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--transport", choices=["http", "instant"], default="http")
    args = parser.parse_args(list(argv))
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if args.transport == "instant":
        asyncio.run(_run(args, "http://simulator"))
        return
    target, port = _start_target("fast")
    try:
        asyncio.run(_run(args, f"http://127.0.0.1:{port}"))
    finally:
        target.terminate()
        target.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1:])
