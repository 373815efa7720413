"""Paging (sla.md "Paging: who is woken, and how often"): held outside support hours, one
digest per person at the opening, one SMS and at most one call per person and instant."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerting import paging
from alerting.internal import AgentEvent, AgentPaging
from alerting.messages import SMS_LIMIT
from alerting.model import MessagePart, OutgoingMessage, RoutingPolicy
from ctiwatch.config import config_from_data
from ctiwatch.settings import monitor_settings, policy_from_config
from pipeline.monitor import Monitor
from sla.priority import Priority

ONCALL = ("+31611111111", "+31622222222")
NIGHT = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)  # Tue 22:00 Amsterdam
OPENING = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)  # Wed 08:30 Amsterdam
DAY = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tue 10:00 Amsterdam
POLICY = RoutingPolicy(oncall=ONCALL)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulate.md"


def message(
    kind: str, to: str = ONCALL[0], channel: str = "sms", incident: int = 1
) -> OutgoingMessage:
    return OutgoingMessage(
        channel=channel,  # type: ignore[arg-type]
        to=to,
        kind=kind,
        subject="",
        text=f"CTIWATCH {kind} #{incident}",
        idempotency_key=f"{incident}:{kind}:{channel}:{to}",
        incident=incident,
        at=NIGHT,
    )


def monitor(**paging_config: object) -> Monitor:
    config = config_from_data(
        {
            "topology": {
                "customers": [
                    {"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice", "bob"]}]}
                ]
            },
            "alerting": {"oncall": list(ONCALL), "paging": paging_config},
        }
    )
    return Monitor(monitor_settings(config), policy_from_config(config.sla))


# --- combining ---------------------------------------------------------------------------------


def test_one_persons_messages_of_one_instant_are_one_sms_and_one_call_of_the_most_urgent_kind() -> (
    None
):
    sent = paging.combine(
        [
            message("report", "support@cloudcti.nl", "email", 2),
            message("opened", incident=2),
            message("opened", ONCALL[1], incident=2),
            message("opened", channel="voice", incident=2),
            message("contingency", incident=2),
            message("contingency", "+31356990244", "voice", 2),
            message("contingency", channel="voice", incident=2),
        ],
        POLICY,
    )

    assert [(m.channel, m.to, m.kind) for m in sent] == [
        ("email", "support@cloudcti.nl", "report"),
        ("sms", ONCALL[1], "opened"),
        ("sms", ONCALL[0], "contingency"),
        ("voice", "+31356990244", "contingency"),
        ("voice", ONCALL[0], "contingency"),
    ]
    combined = sent[2]
    assert combined.parts == (
        MessagePart(2, "contingency", NIGHT),
        MessagePart(2, "opened", NIGHT),
    )
    assert combined.text == "CTIWATCH contingency #2 | CTIWATCH opened #2"
    assert combined.idempotency_key == "2:contingency:sms:" + ONCALL[0]
    assert sent[1].parts == ()  # one message: left as it was


def test_e_mails_to_one_address_are_never_combined() -> None:
    mails = [message("report", "support@cloudcti.nl", "email", n) for n in (1, 2)]
    assert paging.combine(mails, POLICY) == mails


def test_the_urgency_order_is_the_one_docs_simulate_md_documents() -> None:
    text = " ".join(DOCS.read_text(encoding="utf-8").split())
    documented = re.search(r"\*\*Urgency\*\*, most urgent first: (.*?)\. The reading", text)
    assert documented is not None
    assert re.findall(r"`([a-z_]+)`", documented.group(1)) == list(paging.URGENCY)


def test_a_combined_sms_stays_within_three_segments_and_counts_what_did_not_fit() -> None:
    texts = [f"CTIWATCH P3 #{n} acme: crm calls unrecognised at acme-ams " * 2 for n in range(9)]
    text = paging.combined_sms(texts, NIGHT, "Europe/Amsterdam")
    assert len(text) <= paging.COMBINED_SMS_LIMIT
    assert text.startswith("CTIWATCH held since Tue 01 Dec 22:00: CTIWATCH P3 #0 ")
    assert re.search(r" \| \+\d more$", text)
    assert len(paging.combined_sms(["x" * SMS_LIMIT], None, "UTC")) == SMS_LIMIT


# --- holding -----------------------------------------------------------------------------------


def test_a_p4_question_at_night_is_held_and_sent_at_the_opening_as_one_digest_per_person() -> None:
    pipeline = monitor()

    opened = pipeline.open_question("acme", NIGHT, "sanne", "Why is the CRM slow?")
    resolved = pipeline.resolve(1, NIGHT + timedelta(hours=1), "sanne", "answered")

    assert [(m.channel, m.kind) for m in opened.messages] == [("email", "report")]
    assert [(m.to, m.kind) for m in opened.held] == [(ONCALL[0], "opened"), (ONCALL[1], "opened")]
    assert [(m.to, m.kind) for m in resolved.held] == [
        (ONCALL[0], "resolved"),
        (ONCALL[1], "resolved"),
    ]
    assert pipeline.next_due() == OPENING

    assert pipeline.tick(OPENING - timedelta(seconds=1)).messages == []
    digest = pipeline.tick(OPENING)

    assert [(m.channel, m.to, m.kind, m.at, m.held_since) for m in digest.messages] == [
        ("sms", ONCALL[0], "opened", OPENING, NIGHT),
        ("sms", ONCALL[1], "opened", OPENING, NIGHT),
    ]
    assert [p.kind for p in digest.messages[0].parts] == ["opened", "resolved"]
    assert digest.messages[0].text.startswith("CTIWATCH held since Tue 01 Dec 22:00: ")
    assert sorted(digest.released) == sorted(m.idempotency_key for m in opened.held + resolved.held)
    assert pipeline.held == [] and pipeline.next_due() is None
    assert pipeline.tick(OPENING + timedelta(minutes=1)).messages == []


def test_a_held_message_goes_out_with_the_page_when_its_incident_becomes_p1_at_night() -> None:
    pipeline = monitor()
    pipeline.open_question("acme", NIGHT, "sanne", "Calls drop")

    raised = pipeline.change_priority(
        1, Priority.CRITICAL, NIGHT + timedelta(minutes=5), "sanne", "everyone is down"
    )

    sms = [m for m in raised.messages if m.channel == "sms"]
    assert [(m.to, m.kind, [p.kind for p in m.parts]) for m in sms] == [
        (ONCALL[0], "opened", ["opened", "raised"]),
        (ONCALL[1], "opened", ["opened", "raised"]),
    ]
    assert {m.held_since for m in sms} == {NIGHT}
    assert pipeline.held == []


def test_p1_and_p2_page_at_night_and_nothing_is_held_in_support_hours() -> None:
    pipeline = monitor()
    pipeline.open_question("acme", DAY, "sanne", "Why is the CRM slow?")
    assert pipeline.held == []
    assert paging.holds(message("opened"), 2, False, POLICY) is False
    assert paging.holds(message("opened"), 1, False, POLICY) is False
    assert paging.holds(message("opened"), 3, False, POLICY) is True
    assert paging.holds(message("opened", channel="email"), 3, False, POLICY) is False
    assert paging.holds(message("opened"), 4, True, POLICY) is False


def test_held_messages_given_back_after_a_restart_go_out_once_at_the_opening() -> None:
    first = monitor()
    held = first.open_question("acme", NIGHT, "sanne", "Why is the CRM slow?").held
    config_monitor = monitor()
    config_monitor.restore(first.engine.incidents(), None, {}, NIGHT, held=held)

    digest = config_monitor.tick(OPENING)

    assert [(m.to, m.kind, m.held_since) for m in digest.messages] == [
        (ONCALL[0], "opened", NIGHT),
        (ONCALL[1], "opened", NIGHT),
    ]
    assert config_monitor.tick(OPENING).messages == []


# --- ctiwatch's own problems ------------------------------------------------------------------


def agent_offline(at: datetime) -> AgentEvent:
    return AgentEvent("ams-agent-1", "offline", at, at - timedelta(seconds=30), "stopped")


def test_an_agent_going_offline_at_night_texts_on_call_at_the_opening_by_default() -> None:
    pipeline = monitor()
    outcome = pipeline.agent_changed(agent_offline(NIGHT), "online", NIGHT)
    assert outcome.messages == []
    assert [(m.to, m.kind) for m in outcome.held] == [
        (ONCALL[0], "agent_offline"),
        (ONCALL[1], "agent_offline"),
    ]
    assert [(m.kind, m.held_since) for m in pipeline.tick(OPENING).messages] == [
        ("agent_offline", NIGHT),
        ("agent_offline", NIGHT),
    ]


def test_an_agent_going_offline_texts_at_once_by_day_or_when_config_says_any_hour() -> None:
    by_day = monitor().agent_changed(agent_offline(DAY), "online", DAY)
    assert [(m.to, m.kind) for m in by_day.messages] == [
        (ONCALL[0], "agent_offline"),
        (ONCALL[1], "agent_offline"),
    ]
    at_night = monitor(agent_alerts="any_hour").agent_changed(agent_offline(NIGHT), "online", NIGHT)
    assert len(at_night.messages) == 2 and at_night.held == []


def test_a_retired_or_silenced_agent_going_offline_pages_no_one() -> None:
    retired = AgentPaging(retired=True)
    silenced = AgentPaging(silenced_until=DAY + timedelta(hours=1))
    assert retired.muted(DAY) and silenced.muted(DAY)
    assert not silenced.muted(DAY + timedelta(hours=1))
    assert AgentPaging.from_dict(silenced.to_dict()) == silenced
    assert AgentPaging.from_dict({"silenced_until": "soon"}) == AgentPaging()

    outcome = monitor().agent_changed(agent_offline(DAY), "online", DAY, muted=True)
    assert outcome.messages == [] and outcome.held == []
