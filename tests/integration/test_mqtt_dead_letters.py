"""A batch the database refuses in part: the valid results are stored, the refused one is
parked as a dead letter with the reason, on the real SQLite and PostgreSQL stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import MqttConfig, TopologyConfig
from ctiwatch.mqtt.ingest import Ingestion, Refused
from ctiwatch.storage import DeadLetter, Store, is_transient

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
TARGET = TargetKey(Service.CRM, "acme", "ams", "alice")


def result(n: int, *, status: int | None = 200, evidence: str = "") -> ProbeResult:
    return ProbeResult(
        f"r{n:02d}",
        TARGET,
        T0 + timedelta(seconds=n),
        True,
        True,
        5.0,
        status,
        evidence,
        Source.AGENT,
        1,
        "ams-1",
    )


def ingestion_into(store: Store, clock: FixedClock) -> Ingestion:
    async def sink(batch: list[ProbeResult]) -> None:
        await store.results.add_many(batch)

    async def park(refused: list[Refused]) -> None:
        await store.dead_letters.add_many(
            [
                DeadLetter(clock.now(), "mqtt", r.result.result_id, r.reason, r.payload)
                for r in refused
            ]
        )

    return Ingestion(
        MqttConfig(), TopologyConfig(), sink, clock=clock, park=park, transient=is_transient
    )


async def test_a_result_the_database_refuses_is_parked_and_the_others_stored(
    store: Store, backend: str
) -> None:
    clock = FixedClock(T0 + timedelta(minutes=1))
    # What each database refuses: an integer past its column, a NUL in a text column.
    poison = (
        [result(5, status=2**63)]
        if backend == "sqlite"
        else [result(5, status=2**31), result(9, evidence="a\x00b")]
    )
    batch = [result(n) for n in range(12) if n not in (5, 9)] + poison
    ingestion = ingestion_into(store, clock)

    await ingestion.deliver(batch)

    stored = await store.results.history(TARGET, T0, T0 + timedelta(minutes=1))
    assert sorted(r.result_id for r in stored) == [
        f"r{n:02d}" for n in range(12) if n not in (5, 9)
    ]
    letters = await store.dead_letters.latest()
    expected = (
        [("r05", "OverflowError: Python int too large to convert to SQLite INTEGER")]
        if backend == "sqlite"
        else [
            (
                "r09",
                'CharacterNotInRepertoireError: invalid byte sequence for encoding "UTF8": 0x00',
            ),
            ("r05", "OverflowError: value out of int32 range"),
        ]
    )
    assert sorted((d.key, d.reason) for d in letters) == sorted(expected)
    assert all(d.source == "mqtt" and d.parked_at == clock.now() for d in letters)
    assert ingestion.counts.parked == len(expected)


async def test_a_parked_result_keeps_its_payload_with_the_nul_escaped(store: Store) -> None:
    clock = FixedClock(T0 + timedelta(minutes=1))
    ingestion = Ingestion(
        MqttConfig(),
        TopologyConfig(),
        _refusing,
        clock=clock,
        park=ingestion_into(store, clock)._park,
    )

    await ingestion.deliver([result(1, evidence="a\x00b")])

    [letter] = await store.dead_letters.latest()
    assert letter.key == "r01"
    assert letter.reason == "ValueError: refused"
    assert '"evidence":"a\\u0000b"' in letter.payload


async def _refusing(batch: list[ProbeResult]) -> None:
    raise ValueError("refused")
