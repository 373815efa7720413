"""Ingestion without the network: validation, counting, dedup and agent health."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ctiwatch.config import config_from_data
from ctiwatch.mqtt.ingest import AgentHealth, AgentState, AgentTracker, DeadMessage, Receiver
from ctiwatch.mqtt.schema import AgentStatus, encode_call, encode_status
from ctiwatch.mqtt.topics import ParsedTopic, TopicKind, Topics

TOPOLOGY = config_from_data(
    {"topology": {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["alice"]}]}]}}
).topology
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TOPICS = Topics("ctiwatch/v1")


def results_payload(agent: str, *ids: str, user: str = "alice") -> bytes:
    return json.dumps(
        {
            "schema": "ctiwatch.results/1",
            "agent": agent,
            "sent_at": "2025-01-06T09:00:00+00:00",
            "results": [
                {
                    "result_id": result_id,
                    "service": "crm",
                    "customer": "acme",
                    "location": "ams",
                    "user": user,
                    "at": "2025-01-06T09:00:00+00:00",
                    "ok": True,
                    "recognised": True,
                    "latency_ms": 5,
                    "status": 200,
                    "evidence": "",
                    "attempts": 1,
                }
                for result_id in ids
            ],
        }
    ).encode()


def receiver() -> Receiver:
    return Receiver(TOPOLOGY, TOPICS, AgentTracker(MINUTE, stale_after=3), dedup_capacity=100)


def test_redelivered_results_reach_the_sink_once_and_are_counted_as_duplicates() -> None:
    rx = receiver()

    first = rx.receive("ctiwatch/v1/results/ams-1", results_payload("ams-1", "a", "b"), T0)
    again = rx.receive("ctiwatch/v1/results/ams-1", results_payload("ams-1", "b", "c"), T0)

    assert [r.result_id for r in first.results] == ["a", "b"]
    assert [r.result_id for r in again.results] == ["c"]
    assert rx.counts.snapshot() == {
        "messages": 2,
        "accepted": 3,
        "duplicates": 1,
        "rejected": {},
        "parked": 0,
    }


def test_bad_messages_are_counted_by_reason_and_never_raise() -> None:
    rx = receiver()

    for topic, payload in [
        ("ctiwatch/v1/results/ams-1", b"not json"),
        ("ctiwatch/v1/results/ams-1", b'{"schema": "ctiwatch.results/9"}'),
        ("ctiwatch/v1/results/ams-1", results_payload("rtm-1", "x")),
        ("ctiwatch/v1/results/ams-1", results_payload("ams-1", "y", user="mallory")),
        ("ctiwatch/v1/calls/globex", b"{}"),
        ("ctiwatch/v1/elsewhere", b"{}"),
        ("ctiwatch/v1/agents/ams-1/status", b'{"schema": "ctiwatch.agent-status/1"}'),
    ]:
        assert rx.receive(topic, payload, T0).results == []

    assert rx.counts.snapshot() == {
        "messages": 7,
        "accepted": 0,
        "duplicates": 0,
        "rejected": {
            "agent_mismatch": 1,
            "invalid_json": 1,
            "invalid_payload": 1,  # the status without its fields
            "unknown_topic": 1,
            "unknown_user": 1,
            "unsupported_schema": 2,  # version 9, and the call without any schema
        },
        "parked": 0,
    }


def test_call_event_is_accepted_once() -> None:
    rx = receiver()
    payload = encode_call(
        call_id="c1", caller="+31201234567", location="ams", user="alice", recognised=True, at=T0
    )

    first = rx.receive("ctiwatch/v1/calls/acme", payload, T0)
    again = rx.receive("ctiwatch/v1/calls/acme", payload, T0)

    assert [r.result_id for r in first.results] == ["call:acme:c1"]
    assert again.results == []
    assert (rx.counts.accepted, rx.counts.duplicates) == (1, 1)


def test_agent_goes_online_offline_and_back_from_its_messages() -> None:
    rx = receiver()

    online = rx.receive("ctiwatch/v1/agents/ams-1/status", encode_status("ams-1", True, T0), T0)
    results = rx.receive("ctiwatch/v1/results/ams-1", results_payload("ams-1", "a"), T0 + MINUTE)
    will = rx.receive(
        "ctiwatch/v1/agents/ams-1/status",
        encode_status("ams-1", False, T0, "connection lost"),
        T0 + 2 * MINUTE,
    )
    back = rx.receive("ctiwatch/v1/results/ams-1", results_payload("ams-1", "b"), T0 + 3 * MINUTE)

    assert online.agent_changes == [AgentState("ams-1", AgentHealth.ONLINE, T0, T0)]
    assert results.agent_changes == []  # still online: no change to report
    assert will.agent_changes == [
        AgentState(
            "ams-1", AgentHealth.OFFLINE, T0 + 2 * MINUTE, T0 + 2 * MINUTE, "connection lost"
        )
    ]
    assert back.agent_changes == [
        AgentState("ams-1", AgentHealth.ONLINE, T0 + 3 * MINUTE, T0 + 3 * MINUTE)
    ]


def test_agent_silent_for_three_intervals_becomes_stale_once() -> None:
    tracker = AgentTracker(MINUTE, stale_after=3)
    tracker.saw("ams-1", T0)
    tracker.reported(AgentStatus("ams-1", True, T0), T0 + MINUTE)  # heartbeat

    assert tracker.next_check() == T0 + 4 * MINUTE
    assert tracker.check(T0 + 4 * MINUTE - timedelta(seconds=1)) == []
    assert tracker.check(T0 + 4 * MINUTE) == [
        AgentState("ams-1", AgentHealth.STALE, T0 + MINUTE, T0 + 4 * MINUTE, "no report for 3m")
    ]
    assert tracker.check(T0 + 10 * MINUTE) == []
    assert tracker.next_check() is None


def test_offline_agent_does_not_also_become_stale() -> None:
    tracker = AgentTracker(MINUTE, stale_after=3)
    tracker.reported(AgentStatus("ams-1", False, T0, "stopped"), T0)

    assert tracker.check(T0 + timedelta(hours=5)) == []
    assert [a.health for a in tracker.agents()] == [AgentHealth.OFFLINE]


def test_stale_agent_reporting_again_is_online() -> None:
    tracker = AgentTracker(MINUTE, stale_after=2)
    tracker.saw("ams-1", T0)
    tracker.check(T0 + 2 * MINUTE)

    change = tracker.saw("ams-1", T0 + 5 * MINUTE)

    assert change == AgentState("ams-1", AgentHealth.ONLINE, T0 + 5 * MINUTE, T0 + 5 * MINUTE)


def test_topics_parse_only_ctiwatch_topics() -> None:
    assert [
        TOPICS.parse(t)
        for t in (
            "ctiwatch/v1/results/ams-1",
            "ctiwatch/v1/calls/acme",
            "ctiwatch/v1/agents/ams-1/status",
            "ctiwatch/v1/results/ams-1/extra",
            "ctiwatch/v2/results/ams-1",
            "ctiwatch/v1/results/",
        )
    ] == [
        ParsedTopic(TopicKind.RESULTS, "ams-1"),
        ParsedTopic(TopicKind.CALLS, "acme"),
        ParsedTopic(TopicKind.AGENT_STATUS, "ams-1"),
        None,
        None,
        None,
    ]


def test_results_and_calls_are_shared_between_workers_status_is_not() -> None:
    assert TOPICS.subscriptions("ctiwatch") == [
        "$share/ctiwatch/ctiwatch/v1/results/+",
        "$share/ctiwatch/ctiwatch/v1/calls/+",
        "ctiwatch/v1/agents/+/status",
    ]


def test_a_batch_naming_another_agent_than_its_topic_is_given_out_to_be_parked_whole() -> None:
    rx = receiver()
    payload = results_payload("rtm-1", "x")

    intake = rx.receive("ctiwatch/v1/results/ams-1", payload, T0)

    assert intake.results == [] and intake.agent_changes == []
    assert intake.dead == [
        DeadMessage(
            "ctiwatch/v1/results/ams-1",
            'agent_mismatch: agent: "rtm-1" does not match the topic\'s agent "ams-1"',
            payload.decode(),
        )
    ]
    assert rx.counts.rejected == {"agent_mismatch": 1}
    # Other rejections are counted and logged only.
    assert rx.receive("ctiwatch/v1/results/ams-1", b"not json", T0).dead == []
