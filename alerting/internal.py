"""Internal alerts: ctiwatch's own problems, told to on-call by SMS. Pure functions.

A remote probe agent that goes offline or stops reporting is not a customer incident (the
customers' service may be fine; ctiwatch just sees less of it), so it opens no incident and
starts no SLA timer. On-call gets one SMS per number when the agent goes down
(``agent_offline``) and one when it comes back (``agent_back``).

The idempotency key is made of the kind, the agent and the instant that identifies the
transition (the agent's own status message time when there is one), so the same transition
seen twice (a retained status replayed after a restart) is one message, not two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alerting.messages import SMS_LIMIT, short_time, to_gsm7
from alerting.model import OutgoingMessage

AGENT_OFFLINE = "agent_offline"
AGENT_BACK = "agent_back"
_DOWN = frozenset({"offline", "stale"})


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """An agent's health changed to ``health`` (``online``, ``offline`` or ``stale``)."""

    agent: str
    health: str
    at: datetime  # when ctiwatch noticed
    last_seen: datetime  # the last message received from the agent
    reason: str = ""  # "connection lost", "stopped", "no report for 30s"
    key_at: datetime | None = None  # the instant naming the transition; ``at`` when None


def agent_alert_kind(before: str | None, after: str) -> str | None:
    """``agent_offline`` when an agent goes down (or is first heard of as down),
    ``agent_back`` when a down agent is online again, else ``None`` (stale -> offline is
    the same outage; a new agent coming online is no news)."""
    if after in _DOWN and before not in _DOWN:
        return AGENT_OFFLINE
    if after == "online" and before in _DOWN:
        return AGENT_BACK
    return None


def agent_sms(kind: str, event: AgentEvent, timezone: str) -> str:
    """``CTIWATCH INTERNAL: probe agent ams-1 offline (connection lost), last seen Mon 07 Dec
    10:30. Not a customer incident.`` within one GSM-7 segment."""
    name = event.agent
    if kind == AGENT_OFFLINE:
        what = "offline" if event.health == "offline" else "not reporting"
        why = f" ({event.reason})" if event.reason else ""
        seen = short_time(event.last_seen, timezone)
        text = f"CTIWATCH INTERNAL: probe agent {name} {what}{why}, last seen {seen}."
    elif kind == AGENT_BACK:
        text = f"CTIWATCH INTERNAL: probe agent {name} back online at " + short_time(
            event.at, timezone
        )
        text += "."
    else:
        raise ValueError(f"no SMS text for internal alert kind {kind!r}")
    tail = " Not a customer incident."
    text = to_gsm7(text)
    if len(text) + len(tail) <= SMS_LIMIT:
        return text + tail
    return text[: SMS_LIMIT - 3] + "..." if len(text) > SMS_LIMIT else text


def agent_alerts(
    event: AgentEvent, before: str | None, oncall: Sequence[str], timezone: str
) -> list[OutgoingMessage]:
    """The SMS to each on-call number for ``event`` (none when it is no news)."""
    kind = agent_alert_kind(before, event.health)
    if kind is None:
        return []
    text = agent_sms(kind, event, timezone)
    key_at = (event.key_at or event.at).isoformat()
    return [
        OutgoingMessage(
            channel="sms",
            to=number,
            kind=kind,
            subject=f"probe agent {event.agent} {'offline' if kind == AGENT_OFFLINE else 'back'}",
            text=text,
            idempotency_key=f"{kind}:{event.agent}:{key_at}:sms:{number}",
            incident=None,
            at=event.at,
        )
        for number in dict.fromkeys(oncall)
    ]
