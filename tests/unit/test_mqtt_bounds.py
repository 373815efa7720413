"""The bounds of MQTT payloads: nothing a sender publishes reaches the store or the monitor as
a value they cannot take (times near now, status 100–599, no NUL, lengths capped)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ctiwatch.config import config_from_data
from ctiwatch.mqtt.ingest import AgentTracker, Receiver
from ctiwatch.mqtt.schema import (
    MAX_PAYLOAD_BYTES,
    PayloadError,
    TopologyIndex,
    Window,
    decode_call,
    decode_results,
    decode_status,
)
from ctiwatch.mqtt.topics import Topics

TOPOLOGY_CONFIG = config_from_data(
    {"topology": {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["alice"]}]}]}}
).topology
TOPOLOGY = TopologyIndex(TOPOLOGY_CONFIG)
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
LATE = "9999-12-31T23:59:59-14:00"
EARLY = "0001-01-01T00:00:00+14:00"


def result(n: int, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "result_id": f"r{n}",
        "service": "crm",
        "customer": "acme",
        "location": "ams",
        "user": "alice",
        "at": "2025-01-06T09:00:00+00:00",
        "ok": True,
        "recognised": True,
        "latency_ms": 5,
        "status": 200,
        "evidence": "",
        "attempts": 1,
    }
    item.update(changes)
    return item


def batch(*results: dict[str, Any], sent_at: str = "2025-01-06T09:00:00Z") -> bytes:
    return json.dumps(
        {"schema": "ctiwatch.results/1", "agent": "ams-1", "sent_at": sent_at, "results": results}
    ).encode()


def status(at: str) -> bytes:
    return json.dumps(
        {"schema": "ctiwatch.agent-status/1", "agent": "ams-1", "status": "online", "at": at}
    ).encode()


def rejections(payload: bytes) -> list[tuple[str, str]]:
    decoded = decode_results(payload, TOPOLOGY, now=NOW)
    return [(e.reason, str(e)) for e in decoded.rejected]


def test_results_at_the_ends_of_the_calendar_are_rejected_alone_not_raised() -> None:
    decoded = decode_results(
        batch(result(1), result(2, at=LATE), result(3, at=EARLY), result(4)), TOPOLOGY, now=NOW
    )

    assert [r.result_id for r in decoded.results] == ["r1", "r4"]
    assert [(e.reason, str(e)) for e in decoded.rejected] == [
        (
            "time_out_of_window",
            "results[1].at: must be within 1d before and 5m after now "
            '(2025-01-06T09:00:00+00:00), not "9999-12-31T23:59:59-14:00"',
        ),
        (
            "time_out_of_window",
            "results[2].at: must be within 1d before and 5m after now "
            '(2025-01-06T09:00:00+00:00), not "0001-01-01T00:00:00+14:00"',
        ),
    ]


@pytest.mark.parametrize(
    ("at", "kept"),
    [
        ("2025-01-05T09:00:00+00:00", True),  # exactly 24 h back
        ("2025-01-05T08:59:59+00:00", False),
        ("2025-01-06T10:05:00+01:00", True),  # exactly 5 min ahead, in another offset
        ("2025-01-06T09:05:01+00:00", False),
        ("2027-01-06T09:00:00+00:00", False),  # "last probe 2027"
    ],
)
def test_result_times_are_kept_only_within_the_window_around_now(at: str, kept: bool) -> None:
    decoded = decode_results(batch(result(1, at=at)), TOPOLOGY, now=NOW)

    assert [r.result_id for r in decoded.results] == (["r1"] if kept else [])


def test_the_window_is_configurable() -> None:
    wide = Window(back=timedelta(days=3), ahead=timedelta(hours=1))
    payload = batch(result(1, at="2025-01-03T09:00:00Z"), result(2, at="2025-01-06T10:00:00Z"))

    decoded = decode_results(payload, TOPOLOGY, now=NOW, window=wide)

    assert [r.result_id for r in decoded.results] == ["r1", "r2"]


def test_a_batch_sent_at_the_end_of_the_calendar_is_rejected_whole() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_results(batch(result(1), sent_at=LATE), TOPOLOGY, now=NOW)

    assert (caught.value.reason, caught.value.message) == (
        "time_out_of_window",
        "sent_at: must be within 1d before and 5m after now (2025-01-06T09:00:00+00:00), "
        'not "9999-12-31T23:59:59-14:00"',
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": 2**63}, f"results[1].status: must be at most 599, not {2**63}"),
        ({"status": 2**31}, f"results[1].status: must be at most 599, not {2**31}"),
        ({"status": 99}, "results[1].status: must be at least 100, not 99"),
        ({"evidence": "a\x00b"}, "results[1].evidence: must not contain NUL characters"),
        ({"user": "al\x00ice"}, "results[1].user: must not contain NUL characters"),
        ({"result_id": "x" * 129}, "results[1].result_id: must be at most 128 characters"),
        ({"evidence": "e" * 4001}, "results[1].evidence: must be at most 4000 characters"),
        ({"latency_ms": 1e300}, "results[1].latency_ms: must be at most 8.64e+07, not 1e+300"),
    ],
)
def test_a_result_out_of_bounds_is_rejected_alone_naming_its_field(
    change: dict[str, Any], message: str
) -> None:
    decoded = decode_results(batch(result(0), result(1, **change), result(2)), TOPOLOGY, now=NOW)

    assert [r.result_id for r in decoded.results] == ["r0", "r2"]
    assert [(e.reason, str(e)) for e in decoded.rejected] == [("invalid_payload", message)]


def test_agent_status_at_the_ends_of_the_calendar_is_rejected_not_raised() -> None:
    for at in (LATE, EARLY):
        with pytest.raises(PayloadError) as caught:
            decode_status(status(at), now=NOW)
        assert caught.value.reason == "time_out_of_window"
        assert caught.value.message == (
            f'at: must be at most 5m after now (2025-01-06T09:00:00+00:00), not "{at}"'
        )


def test_a_retained_status_may_be_old_as_a_last_will_is() -> None:
    decoded = decode_status(status("2024-12-01T08:00:00+00:00"), now=NOW)

    assert decoded.at == datetime(2024, 12, 1, 8, 0, tzinfo=UTC)


def test_a_call_event_far_in_the_future_or_with_nul_is_rejected() -> None:
    call: dict[str, Any] = {
        "schema": "ctiwatch.call/1",
        "call_id": "c-1",
        "caller": "+31201234567",
        "location": "ams",
        "user": "alice",
        "recognised": True,
        "at": LATE,
        "direction": "inbound",
    }
    with pytest.raises(PayloadError) as late:
        decode_call(json.dumps(call), "acme", TOPOLOGY, now=NOW)
    with pytest.raises(PayloadError) as nul:
        decode_call(json.dumps({**call, "at": "2025-01-06T09:00:00Z", "caller": "+3\x001"}),
                    "acme", TOPOLOGY, now=NOW)  # fmt: skip

    assert late.value.reason == "time_out_of_window"
    assert nul.value.message == "caller: must not contain NUL characters"


def test_an_oversized_payload_is_not_read() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_results(b" " * (MAX_PAYLOAD_BYTES + 1), TOPOLOGY, now=NOW)

    assert caught.value.reason == "too_large"


def test_a_16_kb_topic_is_rejected_and_shown_cut_short() -> None:
    rx = Receiver(TOPOLOGY_CONFIG, Topics("ctiwatch/v1"), AgentTracker(timedelta(minutes=1)))
    topic = "ctiwatch/v1/results/" + "a" * 16_000

    intake = rx.receive(topic, batch(result(1)), NOW)

    assert intake.results == []
    assert dict(rx.counts.rejected) == {"unknown_topic": 1}


def test_the_poison_of_issue_10_is_counted_and_the_valid_beside_it_kept() -> None:
    rx = Receiver(TOPOLOGY_CONFIG, Topics("ctiwatch/v1"), AgentTracker(timedelta(minutes=1)))

    kept = rx.receive(
        "ctiwatch/v1/results/ams-1", batch(result(1), result(2, at=LATE), result(3)), NOW
    )
    late_status = rx.receive("ctiwatch/v1/agents/ams-1/status", status(LATE), NOW)

    assert [r.result_id for r in kept.results] == ["r1", "r3"]
    assert late_status.agent_changes == []
    assert dict(rx.counts.rejected) == {"time_out_of_window": 2}
