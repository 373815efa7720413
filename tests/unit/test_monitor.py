"""The composed middle: escalation hastened by an unanswered page, and what gets persisted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.config import Config, config_from_data
from ctiwatch.settings import monitor_settings, policy_from_config
from pipeline.monitor import Monitor

ONCALL = "+31612345678"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 10:00 Amsterdam: support hours


def _config() -> Config:
    return config_from_data(
        {
            "topology": {
                "customers": [
                    {"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice", "bob"]}]}
                ]
            },
            "alerting": {"oncall": [ONCALL]},
        }
    )


def _failed_rounds(monitor: Monitor, rounds: int) -> datetime:
    at = START
    for index in range(rounds):
        at = START + timedelta(minutes=index)
        batch = [
            ProbeResult(
                result_id=f"{user}-{index}",
                target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", user),
                at=at,
                ok=False,
                recognised=None,
                latency_ms=1.0,
                status=503,
                evidence="[STATUS] (503) == 201",
            )
            for user in ("alice", "bob")
        ]
        monitor.observe(batch, at)
    return at


def _opened_p1() -> tuple[Monitor, datetime]:
    config = _config()
    monitor = Monitor(monitor_settings(config), policy_from_config(config.sla))
    opened = _failed_rounds(monitor, 3)
    assert monitor.engine.incident(1).priority == 1
    return monitor, opened


def test_an_unanswered_page_pages_the_next_escalation_step_at_once() -> None:
    monitor, opened = _opened_p1()
    now = opened + timedelta(minutes=1)

    outcome = monitor.escalate_now(1, now, "voice call to +31612345678: no-answer")

    assert {(m.kind, m.channel, m.to) for m in outcome.messages} >= {
        ("escalated", "email", "support@cloudcti.nl"),
        ("escalated", "voice", "+31356990230"),
    }
    assert all(m.at == now for m in outcome.messages)
    kinds = [entry.kind for entry in monitor.engine.incident(1).timeline]
    assert kinds[-2:] == ["escalation_hastened", "escalated"]
    assert [incident.number for incident in outcome.changed] == [1]


def test_an_acknowledged_incident_is_not_escalated_by_a_failed_page() -> None:
    monitor, opened = _opened_p1()
    monitor.acknowledge(1, opened + timedelta(minutes=1), "alice")

    outcome = monitor.escalate_now(1, opened + timedelta(minutes=2), "no-answer")

    assert outcome.messages == []
    assert monitor.engine.incident(1).timeline[-1].kind == "acknowledged"


def test_a_scheduled_escalation_step_is_handed_over_for_persisting() -> None:
    monitor, opened = _opened_p1()
    due = monitor.next_due()
    assert due == opened + timedelta(minutes=10)

    outcome = monitor.tick(due)

    assert [m.kind for m in outcome.messages][:1] == ["escalated"]
    assert [incident.number for incident in outcome.changed] == [1]
    assert monitor.engine.incident(1).timeline[-1].kind == "escalated"


def test_a_failed_delivery_is_noted_and_hastens_the_escalation() -> None:
    monitor, opened = _opened_p1()
    now = opened + timedelta(seconds=30)

    outcome = monitor.delivery_failed(1, now, "opened voice to +31612345678: Twilio reports busy")

    kinds = [entry.kind for entry in monitor.engine.incident(1).timeline]
    assert kinds[-3:] == ["alert_failed", "escalation_hastened", "escalated"]
    assert {m.kind for m in outcome.messages} == {"escalated"}
    assert [incident.number for incident in outcome.changed] == [1]


def test_a_failed_delivery_after_the_acknowledgement_is_only_noted() -> None:
    monitor, opened = _opened_p1()
    monitor.acknowledge(1, opened + timedelta(seconds=10), "alice")

    outcome = monitor.delivery_failed(1, opened + timedelta(seconds=30), "sms failed")

    assert outcome.messages == []
    assert monitor.engine.incident(1).timeline[-1].kind == "alert_failed"
    assert [incident.number for incident in outcome.changed] == [1]
