"""Internal alerts about probe agents: when on-call is told, the SMS, the idempotency keys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_import_rules import ROOT, SETTINGS, clock_reads

from alerting.internal import AgentEvent, agent_alert_kind, agent_alerts, agent_sms
from alerting.messages import SMS_LIMIT

AT = datetime(2026, 12, 7, 9, 31, 5, tzinfo=UTC)  # Mon 07 Dec 10:31 in Amsterdam
SEEN = datetime(2026, 12, 7, 9, 30, 0, tzinfo=UTC)
WILL = datetime(2026, 12, 7, 8, 0, 0, tzinfo=UTC)
TZ = "Europe/Amsterdam"


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ("online", "offline", "agent_offline"),
        ("online", "stale", "agent_offline"),
        (None, "offline", "agent_offline"),
        ("stale", "offline", None),
        ("offline", "stale", None),
        ("offline", "online", "agent_back"),
        ("stale", "online", "agent_back"),
        (None, "online", None),
        ("online", "online", None),
    ],
)
def test_oncall_is_told_when_an_agent_goes_down_and_when_it_is_back(
    before: str | None, after: str, kind: str | None
) -> None:
    assert agent_alert_kind(before, after) == kind


def test_offline_agent_sms_names_agent_reason_and_last_seen_in_local_time() -> None:
    event = AgentEvent("ams-agent-1", "offline", AT, SEEN, "connection lost", key_at=WILL)
    assert agent_sms("agent_offline", event, TZ) == (
        "CTIWATCH INTERNAL: probe agent ams-agent-1 offline (connection lost), last seen "
        "Mon 07 Dec 10:30. Not a customer incident."
    )


def test_stale_agent_sms_says_not_reporting() -> None:
    event = AgentEvent("ams-agent-1", "stale", AT, SEEN, "no report for 30s")
    assert agent_sms("agent_offline", event, TZ) == (
        "CTIWATCH INTERNAL: probe agent ams-agent-1 not reporting (no report for 30s), "
        "last seen Mon 07 Dec 10:30. Not a customer incident."
    )


def test_agent_back_sms() -> None:
    event = AgentEvent("ams-agent-1", "online", AT, AT)
    assert agent_sms("agent_back", event, TZ) == (
        "CTIWATCH INTERNAL: probe agent ams-agent-1 back online at Mon 07 Dec 10:31. "
        "Not a customer incident."
    )


def test_a_long_reason_still_fits_one_sms() -> None:
    event = AgentEvent("a" * 64, "offline", AT, SEEN, "x" * 200)
    assert len(agent_sms("agent_offline", event, TZ)) == SMS_LIMIT


def test_one_sms_per_oncall_number_without_incident_keyed_by_agent_and_transition() -> None:
    event = AgentEvent("ams-agent-1", "offline", AT, SEEN, "connection lost", key_at=WILL)
    messages = agent_alerts(event, "online", ["+31611111111", "+31622222222", "+31611111111"], TZ)
    assert [(m.channel, m.to, m.kind, m.incident, m.at) for m in messages] == [
        ("sms", "+31611111111", "agent_offline", None, AT),
        ("sms", "+31622222222", "agent_offline", None, AT),
    ]
    assert [m.idempotency_key for m in messages] == [
        "agent_offline:ams-agent-1:2026-12-07T08:00:00+00:00:sms:+31611111111",
        "agent_offline:ams-agent-1:2026-12-07T08:00:00+00:00:sms:+31622222222",
    ]
    # The same transition seen again (a retained status after a restart): the same keys.
    again = agent_alerts(event, None, ["+31611111111", "+31622222222"], TZ)
    assert [m.idempotency_key for m in again] == [m.idempotency_key for m in messages]


def test_no_news_no_messages() -> None:
    event = AgentEvent("ams-agent-1", "offline", AT, SEEN, "connection lost")
    assert agent_alerts(event, "stale", ["+31611111111"], TZ) == []


def test_internal_alerts_are_pure_like_the_rest_of_routing() -> None:
    pure = next(c for c in SETTINGS["contracts"] if c["id"] == "pure-core")
    assert "alerting.internal" in pure["source_modules"]  # kept by test_import_rules
    path: Path = ROOT / "alerting" / "internal.py"
    assert clock_reads(path) == []
