"""What ``/metrics`` costs: per result on the hot path, and per scrape, for a large topology.

``Metrics.observe`` runs for every result before the monitor takes it (results counter, probe
duration and ingestion lag histograms, last round, recognition window); a scrape reads the
classifier's series, the recognition windows and the open incidents. Measured against a monitor
of ``customers`` x ``users`` targets (two services each), on a fixed clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import prometheus_client

from classifier.observation import CALL_SERVICES, ProbeResult, Service, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import config_from_data
from ctiwatch.metrics import Metrics
from ctiwatch.settings import monitor_settings, policy_from_config
from pipeline.monitor import Monitor

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _setup(customers: int, users: int) -> tuple[Metrics, list[ProbeResult], FixedClock]:
    config = config_from_data(
        {
            "topology": {
                "customers": [
                    {
                        "id": f"c{c}",
                        "locations": [{"id": f"c{c}-l", "users": [f"u{u}" for u in range(users)]}],
                    }
                    for c in range(customers)
                ]
            },
            "alerting": {"oncall": ["+31612345678"]},
        }
    )
    monitor = Monitor(monitor_settings(config), policy_from_config(config.sla))
    clock = FixedClock(T0)
    metrics = Metrics(clock)
    metrics.watch(monitor)
    batch = [
        ProbeResult(
            result_id=f"{service}-{c}-{u}",
            target=TargetKey(service, f"c{c}", f"c{c}-l", f"u{u}"),
            at=T0,
            ok=(c + u) % 7 != 0,
            recognised=((c + u) % 3 != 0) if service is Service.CRM else None,
            latency_ms=40.0 + (c * u) % 900,
            status=201,
            evidence="[STATUS] (201) == 201",
        )
        for c in range(customers)
        for u in range(users)
        for service in CALL_SERVICES
    ]
    return metrics, batch, clock


class _Collected:
    def __init__(self, families: list[prometheus_client.Metric]) -> None:
        self._families = families

    def collect(self) -> list[prometheus_client.Metric]:
        return self._families


def measure(customers: int, users: int, rounds: int) -> tuple[float, float, float, int]:
    """(µs per observed result, ms collecting on the loop, ms formatting in the web's thread,
    bytes per scrape): the best of a few."""
    metrics, batch, clock = _setup(customers, users)
    per_result = []
    for round_ in range(rounds):
        clock.set(T0 + timedelta(minutes=round_))
        started = time.perf_counter()
        metrics.observe(batch)
        per_result.append((time.perf_counter() - started) / len(batch) * 1e6)
    collects, formats = [], []
    size = 0
    for _ in range(5):
        started = time.perf_counter()
        families = list(metrics.registry.collect())
        collected = time.perf_counter()
        size = len(prometheus_client.generate_latest(_Collected(families)))
        collects.append((collected - started) * 1000)
        formats.append((time.perf_counter() - collected) * 1000)
    return min(per_result), min(collects), min(formats), size


def main() -> None:
    print(
        "| targets | customers | µs per result | ms collecting (loop) | ms formatting (thread) "
        "| size |"
    )
    print("|---|---|---|---|---|---|")
    for customers, users in ((10, 10), (100, 10), (500, 10)):
        targets = customers * users * len(CALL_SERVICES)
        micro, collect, text, size = measure(customers, users, rounds=5)
        print(
            f"| {targets} | {customers} | {micro:.2f} | {collect:.1f} | {text:.1f} "
            f"| {size / 1e6:.2f} MB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
