"""Delivering accepted results to the sink: a database fault is waited out (nothing dropped), a
refused result is found by splitting its batch and parked alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import MqttConfig, TopologyConfig
from ctiwatch.mqtt.ingest import Ingestion, Refused
from ctiwatch.storage import is_transient

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def result(n: int, status: int | None = 200) -> ProbeResult:
    return ProbeResult(
        f"r{n}",
        TargetKey(Service.CRM, "acme", "ams", "alice"),
        T0,
        True,
        True,
        5.0,
        status,
        "",
        Source.AGENT,
    )


class Store:
    """Stands in for the database: refuses status 999, is away for the first ``down`` calls."""

    def __init__(self, down: int = 0, fault: Exception | None = None) -> None:
        self.stored: list[str] = []
        self.parked: list[tuple[str, str]] = []
        self.calls = 0
        self._down = down
        self._fault = fault or ConnectionResetError("connection lost")

    async def sink(self, batch: list[ProbeResult]) -> None:
        self.calls += 1
        if self.calls <= self._down:
            raise self._fault
        if any(r.status == 999 for r in batch):
            raise OverflowError("value out of int32 range")
        self.stored += [r.result_id for r in batch]

    async def park(self, refused: list[Refused]) -> None:
        self.parked += [(r.result.result_id, r.reason) for r in refused]


def ingestion(store: Store, clock: FixedClock) -> Ingestion:
    return Ingestion(
        MqttConfig(),
        TopologyConfig(),
        store.sink,
        clock=clock,
        park=store.park,
        transient=is_transient,
    )


async def test_one_refused_result_among_a_thousand_is_parked_and_the_rest_stored_in_order() -> None:
    store = Store()
    batch = [result(n, status=999 if n == 617 else 200) for n in range(1000)]

    await ingestion(store, FixedClock(T0)).deliver(batch)

    assert store.stored == [f"r{n}" for n in range(1000) if n != 617]
    assert store.parked == [("r617", "OverflowError: value out of int32 range")]
    assert store.calls <= 2 * 10 + 1  # halves down to the one: about 2 log2(n) attempts


async def test_a_lost_connection_is_retried_with_backoff_and_nothing_is_dropped() -> None:
    store = Store(down=5)
    clock = FixedClock(T0)

    await ingestion(store, clock).deliver([result(1), result(2)])

    assert store.stored == ["r1", "r2"]
    assert store.parked == []
    assert store.calls == 6
    assert timedelta(seconds=0.2 * (1 + 2 + 4 + 8 + 16) / 2) <= clock.now() - T0
    assert clock.now() - T0 <= timedelta(seconds=0.2 * (1 + 2 + 4 + 8 + 16))


async def test_a_locked_sqlite_database_is_a_fault_to_wait_out_not_a_refusal() -> None:
    locked = OperationalError("INSERT", {}, Exception("database is locked"))
    store = Store(down=3, fault=locked)

    await ingestion(store, FixedClock(T0)).deliver([result(1)])

    assert (store.stored, store.parked) == (["r1"], [])


async def test_a_refused_result_waits_for_the_dead_letter_table_when_the_database_is_away() -> None:
    store = Store()
    failures = [ConnectionRefusedError("connect call failed")] * 2

    async def park(refused: list[Refused]) -> None:
        if failures:
            raise failures.pop()
        await store.park(refused)

    rx = Ingestion(
        MqttConfig(), TopologyConfig(), store.sink, clock=FixedClock(T0), park=park,
        transient=is_transient,
    )  # fmt: skip

    await rx.deliver([result(1, status=999)])

    assert store.parked == [("r1", "OverflowError: value out of int32 range")]
    assert rx.counts.parked == 1
