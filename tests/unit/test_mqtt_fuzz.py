"""Hypothesis fuzz of what anyone can publish: results, agent status, call events and topics.
Nothing raises, every rejection is a clear reason, the valid results beside them all come out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctiwatch.config import config_from_data
from ctiwatch.mqtt.ingest import AgentTracker, Receiver
from ctiwatch.mqtt.topics import Topics

TOPOLOGY = config_from_data(
    {"topology": {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["alice"]}]}]}}
).topology
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
FIELDS = ("result_id", "service", "customer", "location", "user", "at", "ok", "recognised",
          "latency_ms", "status", "evidence", "attempts")  # fmt: skip
REASONS = {
    "invalid_json", "invalid_payload", "unsupported_schema", "unknown_topic", "agent_mismatch",
    "unknown_customer", "unknown_location", "unknown_user", "time_out_of_window", "too_large",
}  # fmt: skip

# Values a hostile or broken sender might put anywhere.
times = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.timezones()
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2025-01-06"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(alphabet="\x00\n\r\t\u2028a", max_size=8),
    times,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def valid(n: int) -> dict[str, Any]:
    return {
        "result_id": f"good-{n}",
        "service": "crm",
        "customer": "acme",
        "location": "ams",
        "user": "alice",
        "at": "2025-01-06T08:59:00+00:00",
        "ok": True,
        "recognised": True,
        "latency_ms": 5.0,
        "status": 200,
        "evidence": "GET -> 200",
        "attempts": 1,
    }


@st.composite
def poisoned(draw: st.DrawFn) -> dict[str, Any]:
    item = valid(draw(st.integers(0, 10**6)))
    item["result_id"] = "bad-" + draw(st.text(max_size=10))
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        item[name] = draw(json_values)
    if str(item["result_id"]).startswith("good-"):  # never the id of a valid result beside it
        item["result_id"] = "bad"
    return item


def receiver() -> Receiver:
    return Receiver(TOPOLOGY, Topics("ctiwatch/v1"), AgentTracker(timedelta(minutes=1)))


def assert_judged_cleanly(rx: Receiver) -> None:
    assert set(rx.counts.rejected) <= REASONS


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(poisoned(), max_size=4), st.integers(1, 5), st.randoms())
def test_poisoned_results_never_raise_and_the_valid_beside_them_all_come_out(
    bad: list[dict[str, Any]], good_count: int, rnd: Any
) -> None:
    good = [valid(n) for n in range(good_count)]
    items = good + bad
    rnd.shuffle(items)
    payload = json.dumps(
        {"schema": "ctiwatch.results/1", "agent": "ams-1", "sent_at": "2025-01-06T09:00:00Z",
         "results": items}
    ).encode()  # fmt: skip
    rx = receiver()

    intake = rx.receive("ctiwatch/v1/results/ams-1", payload, NOW)

    came_out = {r.result_id for r in intake.results}
    assert {g["result_id"] for g in good} <= came_out
    assert all(r.status is None or 100 <= r.status <= 599 for r in intake.results)
    assert all("\x00" not in r.evidence for r in intake.results)
    assert all(
        NOW - timedelta(days=1) <= r.at <= NOW + timedelta(minutes=5) for r in intake.results
    )
    assert_judged_cleanly(rx)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["schema", "agent", "status", "at", "reason", "x"]), json_values
    )
)
def test_any_agent_status_is_taken_or_rejected_never_raised(fields: dict[str, Any]) -> None:
    payload = {"schema": "ctiwatch.agent-status/1", "agent": "ams-1", "status": "online",
               "at": "2025-01-06T09:00:00Z", **fields}  # fmt: skip
    rx = receiver()

    rx.receive("ctiwatch/v1/agents/ams-1/status", json.dumps(payload).encode(), NOW)

    assert_judged_cleanly(rx)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(
            ["schema", "call_id", "caller", "location", "user", "recognised", "at", "direction"]
        ),
        json_values,
    )
)
def test_any_call_event_is_taken_or_rejected_never_raised(fields: dict[str, Any]) -> None:
    payload = {"schema": "ctiwatch.call/1", "call_id": "c-1", "caller": "+31201234567",
               "location": "ams", "user": "alice", "recognised": True,
               "at": "2025-01-06T09:00:00Z", "direction": "inbound", **fields}  # fmt: skip
    rx = receiver()

    intake = rx.receive("ctiwatch/v1/calls/acme", json.dumps(payload).encode(), NOW)

    assert len(intake.results) <= 1
    assert_judged_cleanly(rx)


@settings(max_examples=300)
@given(
    st.text(max_size=300) | st.text(max_size=20).map(lambda t: t * 1000), st.binary(max_size=200)
)
def test_any_topic_and_any_bytes_are_rejected_with_a_reason(topic: str, payload: bytes) -> None:
    rx = receiver()

    rx.receive(topic, payload, NOW)
    rx.receive("ctiwatch/v1/results/" + topic, payload, NOW)

    assert_judged_cleanly(rx)
    assert sum(rx.counts.rejected.values()) == 2
