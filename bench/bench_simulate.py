"""Simulated probe results per second through the whole ``ctiwatch simulate`` pipeline.

A generated scenario: ``USERS`` users (10 customers with 2 locations of 5 users each) x 2
services, probed every 60 s, for ``DAYS`` days of virtual time (a week is 2,016,000 results),
with faults every day (a location outage at night and a second customer's at the same time,
so a contingency call; one user down by day; a user's misses; answers slower than the probes'
timeout) so that the classifier, the incident engine, the SLA timers, escalation and routing
all do real work. It runs in this process exactly as ``ctiwatch simulate`` runs it
(``run_simulation``: the virtual-time loop and its garbage-collector settings); the rate is
results per wall second and per CPU second (the machine is shared: CPU time is steadier).

``python -m bench simulate`` runs one simulated day and extrapolates to a week;
``python bench/bench_simulate.py --days 7`` runs the week itself; ``--profile`` prints the
top of a cProfile run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from ctiwatch.config import Config
from ctiwatch.scenario import Scenario, scenario_from_data
from ctiwatch.simulate import result_json, run_simulation

USERS = 100
CUSTOMERS = 10
LOCATIONS_PER_CUSTOMER = 2
DAYS = 1.0
GOAL_WEEK_SECONDS = 60.0
START = "2026-11-30T00:00:00+01:00"  # a Monday
WEEK = timedelta(days=7)


def scenario_data(users: int = USERS, days: float = DAYS) -> dict[str, Any]:
    """``users`` users over ``CUSTOMERS`` customers with two locations each, plus faults."""
    locations = CUSTOMERS * LOCATIONS_PER_CUSTOMER
    per_location = max(1, users // locations)
    customers = [
        {
            "id": f"c{c}",
            "name": f"Customer {c}",
            "locations": [
                {
                    "id": f"c{c}-l{n}",
                    "users": [f"u{c}-{n}-{u}" for u in range(per_location)],
                }
                for n in range(LOCATIONS_PER_CUSTOMER)
            ],
        }
        for c in range(CUSTOMERS)
    ]
    start = datetime.fromisoformat(START)

    def at(hours: float) -> str:
        return (start + timedelta(hours=hours)).isoformat()

    faults: list[dict[str, Any]] = []
    day = 0
    while day < days:
        base = day * 24
        faults += [
            # a location outage at night (P1) and, with a second customer, a contingency
            {"service": "click2dial", "customer": "c0", "location": "c0-l0",
             "from": at(base + 2), "to": at(base + 3), "kind": "outage"},
            {"service": "crm", "customer": "c1", "from": at(base + 2.5), "to": at(base + 4),
             "kind": "outage"},
            # one user down by day (P2)
            {"service": "crm", "customer": "c2", "location": "c2-l1", "users": ["u2-1-0"],
             "from": at(base + 10), "to": at(base + 11), "kind": "outage"},
            # misses (P3) and slow answers past the probes' timeout
            {"service": "crm", "customer": "c3", "users": ["u3-0-1"], "from": at(base + 13),
             "to": at(base + 15), "kind": "unrecognized", "rate": 0.1},
            {"service": "click2dial", "customer": "c4", "location": "c4-l0",
             "from": at(base + 16), "to": at(base + 16.5), "kind": "slow", "latency": "20s"},
        ]  # fmt: skip
        day += 1
    return {
        "start": START,
        "duration": f"{round(days * 24 * 3600)}s",
        "probe_interval": "60s",
        "oncall": ["+31611111111", "+31622222222"],
        "seed": 7,
        "customers": customers,
        "faults": faults,
    }


def run(scenario: Scenario) -> tuple[int, int, int, float, float]:
    """(results, incidents, alerts, wall seconds, CPU seconds) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_simulation(Config(), scenario)
    result_json(result)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return result.results, len(result.incidents), len(result.alerts), wall, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--days", type=float, default=DAYS)
    parser.add_argument("--profile", action="store_true", help="print a cProfile top 40")
    args = parser.parse_args([] if argv is None else argv)
    scenario = scenario_from_data(scenario_data(args.users, args.days))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, scenario)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
        return
    results, incidents, alerts, wall, cpu = run(scenario)
    per_wall, per_cpu = results / wall, results / cpu
    week = scenario.duration and WEEK / scenario.duration
    print(
        f"simulate: {args.users} users x 2 services at 60 s for {args.days:g} day(s): "
        f"{results:,} results, {incidents} incidents, {alerts} alerts"
    )
    print(f"  wall {wall:.2f} s: {per_wall:,.0f} results/s")
    print(f"  CPU  {cpu:.2f} s: {per_cpu:,.0f} results/s")
    print(
        f"  a week ({results * week:,.0f} results): {wall * week:.1f} s wall, "
        f"{cpu * week:.1f} s CPU (goal: under {GOAL_WEEK_SECONDS:g} s)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
