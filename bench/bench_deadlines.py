"""How many ``compute_deadlines`` calls one core does per second (goal: 100,000/s).

Instants are spread uniformly over 2026-2030 (most fall outside support hours, as real reports
do at night and at weekends) with the priorities mixed evenly; a second run uses only instants
inside support hours. The first pass warms the calendar's per-year holiday and per-day caches,
then the best of several timed passes is reported.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sla.deadlines import compute_deadlines
from sla.priority import Priority
from sla.targets import SlaPolicy

CALLS = 100_000
PASSES = 5
_START = datetime(2026, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = int((datetime(2031, 1, 1, tzinfo=UTC) - _START).total_seconds())


def _instants(
    policy: SlaPolicy, inside_support: bool, seed: int
) -> list[tuple[Priority, datetime]]:
    rng = random.Random(seed)
    priorities = list(Priority)
    cases: list[tuple[Priority, datetime]] = []
    while len(cases) < CALLS:
        at = _START + timedelta(seconds=rng.randrange(_SPAN_SECONDS))
        if inside_support and not policy.calendar.is_support_time(at):
            continue
        cases.append((rng.choice(priorities), at))
    return cases


def rate(policy: SlaPolicy, cases: Sequence[tuple[Priority, datetime]]) -> float:
    """Calls per second: best of ``PASSES`` timed passes after one warm-up pass."""
    for priority, at in cases:
        compute_deadlines(policy, priority, at)
    best = float("inf")
    for _ in range(PASSES):
        began = time.perf_counter()
        for priority, at in cases:
            compute_deadlines(policy, priority, at)
        best = min(best, time.perf_counter() - began)
    return len(cases) / best


def main() -> None:
    policy = SlaPolicy.default()
    cold_policy = SlaPolicy.default()
    cases = _instants(policy, inside_support=False, seed=1)
    began = time.perf_counter()
    for priority, at in cases:
        compute_deadlines(cold_policy, priority, at)
    cold = len(cases) / (time.perf_counter() - began)
    print(f"compute_deadlines, 2026-2030 any time, cold caches: {cold:,.0f}/s")
    print(f"compute_deadlines, 2026-2030 any time:              {rate(policy, cases):,.0f}/s")
    inside = _instants(policy, inside_support=True, seed=2)
    print(f"compute_deadlines, inside support hours:           {rate(policy, inside):,.0f}/s")


if __name__ == "__main__":
    main()
