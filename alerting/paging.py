"""Paging: who is woken, and how often (``sla.md``, "Paging: who is woken, and how often"). Pure.

:func:`alerting.routing.route` says who is told what for one trigger; this module decides when
those messages go out and how many a person gets:

* **Held outside support hours.** P1 and P2 page on-call at any hour. The SLA's "Accessibility"
  is support hours for every priority and P3/P4 targets are best effort, so an SMS about an
  incident of a held priority (``policy.held_priorities``, default P3 and P4) raised outside
  support hours is held (:func:`holds`) and goes out at the next opening of support hours, all
  of one person's held messages as one digest (:func:`release` then :func:`combine`). A held
  message of an incident that has since become P1 or P2 goes out with the step that made it so,
  whatever the hour. ctiwatch's own problems (a probe agent offline or back:
  ``alerting.internal``, no incident) are held the same way unless
  ``policy.internal_any_hour``.
* **Combined.** Messages to one person at one instant are one message per channel: one SMS and
  at most one call (e.g. the ``opened`` page and the ``contingency`` notice of the same moment,
  or a response and an update warning falling due together). The combined message takes the
  kind and incident of its most urgent part (:data:`URGENCY`), carries every part in
  ``parts``, and stands where that part stood in the order of sending. E-mail is not combined:
  the report and the other e-mails go to the support address, one complete document each.

Urgency (most urgent first): what asks the most of the person reading it comes first.
``contingency`` (several customers down, or a repair deadline expired: the SLA's 24x7 line is
involved), ``escalated`` (nobody has answered), ``opened``, ``raised``, the breaches
(``response``, ``update``, ``repair``), the warnings (same order), ``agent_offline``
(ctiwatch sees less), then the good news: ``resolved``, ``agent_back``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from alerting.messages import short_time, to_gsm7
from alerting.model import Channel, OutgoingMessage, RoutingPolicy

URGENCY: tuple[str, ...] = (
    "contingency",
    "escalated",
    "opened",
    "raised",
    "response_breach",
    "update_breach",
    "repair_breach",
    "response_warning",
    "update_warning",
    "repair_warning",
    "agent_offline",
    "resolved",
    "agent_back",
)
_RANK = {kind: index for index, kind in enumerate(URGENCY)}

# A combined or digest SMS may take up to three concatenated GSM-7 segments (153 characters
# each once the concatenation header is in): a digest names every part, the first in full.
COMBINED_SMS_LIMIT = 3 * 153
_COMBINED: frozenset[Channel] = frozenset({"sms", "voice"})
_VOICE_INTRO = "This is ctiwatch. "


def urgency(kind: str) -> int:
    """The rank of ``kind`` in :data:`URGENCY` (0 is the most urgent; unknown kinds last)."""
    return _RANK.get(kind, len(URGENCY))


def holds(
    message: OutgoingMessage, priority: int | None, in_support_hours: bool, policy: RoutingPolicy
) -> bool:
    """Whether ``message`` waits for the next opening of support hours: an SMS raised outside
    them about an incident of a held priority, or (``priority`` ``None``) about ctiwatch's own
    problems unless ``policy.internal_any_hour``."""
    if in_support_hours or message.channel != "sms":
        return False
    if priority is None:
        return not policy.internal_any_hour
    return priority in policy.held_priorities


def split_held(
    messages: Iterable[OutgoingMessage],
    priority: int | None,
    in_support_hours: bool,
    policy: RoutingPolicy,
) -> tuple[list[OutgoingMessage], list[OutgoingMessage]]:
    """``messages`` split into those to send now and those to hold (both in order)."""
    now: list[OutgoingMessage] = []
    held: list[OutgoingMessage] = []
    for message in messages:
        (held if holds(message, priority, in_support_hours, policy) else now).append(message)
    return now, held


def release(
    held: Sequence[OutgoingMessage],
    now: datetime,
    in_support_hours: bool,
    priorities: Mapping[int, int],
    policy: RoutingPolicy,
) -> tuple[list[OutgoingMessage], list[OutgoingMessage]]:
    """The held messages that go out at ``now`` and those that still wait.

    Inside support hours every held message goes out; outside, only those whose incident now
    has a priority that pages at any hour (``priorities``: incident number -> its priority now).
    A released message is sent at ``now``, keeps its own instant as ``held_since`` and as its
    part's instant, and is ready for :func:`combine` to make one digest per person.
    """
    out: list[OutgoingMessage] = []
    kept: list[OutgoingMessage] = []
    for message in held:
        incident = message.incident
        paging_now = (
            incident is not None
            and incident in priorities
            and priorities[incident] not in policy.held_priorities
        )
        if in_support_hours or paging_now:
            since = message.held_since or message.at
            out.append(replace(message, at=now, held_since=since, parts=message.all_parts))
        else:
            kept.append(message)
    return out, kept


def combine(messages: Sequence[OutgoingMessage], policy: RoutingPolicy) -> list[OutgoingMessage]:
    """One SMS and at most one call per recipient among ``messages`` (one instant's), each
    combined message where its most urgent part stood; e-mails and single messages unchanged,
    but for a held one, whose text then says since when it was held."""
    groups: dict[tuple[Channel, str], list[int]] = {}
    for index, message in enumerate(messages):
        if message.channel in _COMBINED:
            groups.setdefault((message.channel, message.to), []).append(index)
    placed: dict[int, OutgoingMessage] = {}
    dropped: set[int] = set()
    for indexes in groups.values():
        if len(indexes) == 1 and messages[indexes[0]].held_since is None:
            continue
        members = sorted(indexes, key=lambda i: (urgency(messages[i].kind), i))
        placed[members[0]] = merge([messages[i] for i in members], policy)
        dropped.update(members[1:])
    return [
        placed.get(index, message) for index, message in enumerate(messages) if index not in dropped
    ]


def merge(members: Sequence[OutgoingMessage], policy: RoutingPolicy) -> OutgoingMessage:
    """``members`` (one channel, one recipient, the most urgent first) as one message."""
    first = members[0]
    parts = sorted(
        (part for member in members for part in member.all_parts),
        key=lambda part: urgency(part.kind),
    )
    held = [m.held_since for m in members if m.held_since is not None]
    since = min(held) if held else None
    if first.channel == "sms":
        text = combined_sms([m.text for m in members], since, policy.timezone)
    else:
        text = combined_voice([m.text for m in members])
    return replace(
        first,
        text=text,
        at=max(m.at for m in members),
        parts=tuple(parts),
        held_since=since,
    )


def combined_sms(texts: Sequence[str], held_since: datetime | None, timezone: str) -> str:
    """The texts of one person's SMS at one instant as one SMS of at most
    :data:`COMBINED_SMS_LIMIT` characters: a digest names when it was held from, then every
    text that fits after the first, separated by `` | ``; what does not fit is counted."""
    head = f"CTIWATCH held since {short_time(held_since, timezone)}: " if held_since else ""
    kept: list[str] = []
    for index, text in enumerate(texts):
        left = len(texts) - index - 1
        more = f" | +{left} more" if left else ""
        candidate = head + " | ".join([*kept, text])
        if len(to_gsm7(candidate + more)) > COMBINED_SMS_LIMIT:
            if not kept:  # the first text always leads, cut to make room
                room = COMBINED_SMS_LIMIT - len(to_gsm7(head + more)) - 3
                kept.append(to_gsm7(text)[: max(room, 0)] + "...")
                continue
            return to_gsm7(head + " | ".join(kept) + f" | +{len(texts) - index} more")
        kept.append(text)
    return to_gsm7(head + " | ".join(kept))


def combined_voice(texts: Sequence[str]) -> str:
    """The words of one person's calls at one instant as one call: the most urgent first, then
    the others after "Also:"."""
    if len(texts) == 1:
        return texts[0]
    rest = [t.removeprefix(_VOICE_INTRO) for t in texts[1:]]
    return texts[0] + " Also: " + " ".join(rest)
