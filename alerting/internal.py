"""Internal alerts: ctiwatch's own problems, told to on-call by SMS. Pure functions.

A remote probe agent that goes offline or stops reporting is not a customer incident (the
customers' service may be fine; ctiwatch just sees less of it), so it opens no incident and
starts no SLA timer. On-call gets one SMS per number when the agent goes down
(``agent_offline``) and one when it comes back (``agent_back``).

Who is told, and when (sla.md "Paging"): an agent that was retired or is silenced
(:class:`AgentPaging`, set by ``ctiwatch agents retire|silence`` and stored with the agent)
pages no one when it goes offline or comes back; otherwise on-call is texted inside support
hours only, unless the configuration says any hour (``alerting.paging``: the monitor holds the
messages for the digest at the next opening).

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


@dataclass(frozen=True, slots=True)
class AgentPaging:
    """What people decided about an agent's pages: ``retired`` (taken out of service for good,
    until it is put back) or silenced until ``silenced_until`` (e.g. a planned move)."""

    retired: bool = False
    silenced_until: datetime | None = None
    by: str = ""
    reason: str = ""

    def muted(self, at: datetime) -> bool:
        """Whether the agent's going offline (or coming back) at ``at`` pages no one."""
        return self.retired or (self.silenced_until is not None and at < self.silenced_until)

    def to_dict(self) -> dict[str, object]:
        return {
            "retired": self.retired,
            "silenced_until": None
            if self.silenced_until is None
            else self.silenced_until.isoformat(),
            "by": self.by,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: object) -> AgentPaging:
        """The stored form back; anything unreadable is no decision (the agent pages)."""
        if not isinstance(data, dict):
            return cls()
        until = data.get("silenced_until")
        try:
            silenced = datetime.fromisoformat(until) if isinstance(until, str) else None
        except ValueError:
            silenced = None
        if silenced is not None and silenced.tzinfo is None:
            silenced = None
        return cls(
            retired=data.get("retired") is True,
            silenced_until=silenced,
            by=str(data.get("by") or ""),
            reason=str(data.get("reason") or ""),
        )


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
